"""The event sources of the local event runner (infra.local.runner), one module each.

- `sqs`: `@app.on_sqs_message`, as Lambda's SQS event source mapping polls a queue.
- `streams`: `@app.on_dynamodb_record`, as Lambda's DynamoDB Streams event source mapping reads a stream.
- `schedules`: `@app.schedule`, as an EventBridge rule fires.

Each module defines an `EventSource` subclass (see `base`): given the runner and one of the app's
event source configs, it starts its poll loops on the runner's threads, shapes each event as Lambda
sends it, and calls `runner.invoke`. The runner keeps the lifecycle, the functions' environment and
the idle bookkeeping.
"""
