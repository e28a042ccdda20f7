"""State machine definitions (Amazon States Language as data): CDK deploys them, local runs them."""
