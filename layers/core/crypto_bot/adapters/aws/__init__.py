"""AWS adapters: the DynamoDB store and the paper exchange's persisted state.

Only imported where boto3 is available (the Lambda runtime, the dev environment).
"""
