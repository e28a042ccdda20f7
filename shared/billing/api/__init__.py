"""The HTTP edge: request and response models, routers per resource, middlewares, the OpenAPI document."""
