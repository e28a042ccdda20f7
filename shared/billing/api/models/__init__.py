"""Request and response models of the API: the OpenAPI document is generated from them."""
