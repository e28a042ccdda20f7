"""One Powertools Router per resource; each route calls one service method."""
