"""Data access: the only package that imports boto3. Maps ClientError to domain errors."""
