"""Usage-based billing: the code layer every Lambda function imports."""
