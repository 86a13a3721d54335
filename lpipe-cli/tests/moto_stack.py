"""Creates a translated template (plain CloudFormation, from sam_translate.py) as a stack in
moto's CloudFormation, then reads back what was made, as JSON on standard output: the stack's
status and reason, each resource's type and status, the types moto did not make
(`not_made`), every queue's attributes, every table's TTL, and the event source mappings.

moto's CloudFormation does not make AWS::Lambda::EventInvokeConfig; its Lambda API does, so
each such resource is put through the API as CloudFormation would (listed in `applied`).

Each function's code is a zip holding a `bootstrap`, put first at the S3 location the
translation gave it.

usage: moto_stack.py ENDPOINT TEMPLATE.json STACK_NAME
"""
import io
import json
import sys
import time
import zipfile

import boto3


def client(service, endpoint):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def upload_code(s3, template):
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as z:
        z.writestr("bootstrap", "#!/bin/sh\n")
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::Lambda::Function":
            continue
        location = resource["Properties"]["Code"]
        bucket, key = location["S3Bucket"], location["S3Key"]
        try:
            s3.create_bucket(Bucket=bucket)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        s3.put_object(Bucket=bucket, Key=key, Body=code.getvalue())


def apply_invoke_configs(endpoint, template, made, physical):
    """The template's AWS::Lambda::EventInvokeConfig resources moto did not make, put through
    the Lambda API; their logical ids."""
    sqs, lam = client("sqs", endpoint), client("lambda", endpoint)
    applied = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Lambda::EventInvokeConfig" or logical_id in made:
            continue
        p = resource["Properties"]
        function = template["Resources"][p["FunctionName"]["Ref"]]["Properties"]["FunctionName"]
        queue = p["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
        arn = sqs.get_queue_attributes(QueueUrl=physical[queue], AttributeNames=["QueueArn"])
        lam.put_function_event_invoke_config(
            FunctionName=function,
            Qualifier=p.get("Qualifier", "$LATEST"),
            MaximumRetryAttempts=p["MaximumRetryAttempts"],
            DestinationConfig={"OnFailure": {"Destination": arn["Attributes"]["QueueArn"]}},
        )
        applied.append(logical_id)
    return applied


def main():
    endpoint, path, stack = sys.argv[1:4]
    with open(path) as f:
        template = json.load(f)
    cfn = client("cloudformation", endpoint)
    upload_code(client("s3", endpoint), template)
    parameters = [
        {"ParameterKey": name, "ParameterValue": f"arn:aws:sqs:us-east-1:123456789012:external-{name}"}
        for name in template.get("Parameters", {})
    ]
    cfn.create_stack(StackName=stack, TemplateBody=json.dumps(template), Parameters=parameters,
                     Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"])
    for _ in range(120):
        described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
        if not described["StackStatus"].endswith("IN_PROGRESS"):
            break
        time.sleep(0.5)
    resources = cfn.describe_stack_resources(StackName=stack)["StackResources"]
    made = {r.get("LogicalResourceId") for r in resources if r.get("ResourceType")}
    not_made = sorted({r["Type"] for i, r in template["Resources"].items() if i not in made})
    physical = {r.get("LogicalResourceId"): r.get("PhysicalResourceId") for r in resources}
    applied = apply_invoke_configs(endpoint, template, made, physical)
    report = {
        "status": described["StackStatus"],
        "reason": described.get("StackStatusReason"),
        "resources": {r.get("LogicalResourceId", "?"): {"type": r.get("ResourceType"), "status": r.get("ResourceStatus"), "id": r.get("PhysicalResourceId")} for r in resources},
        "not_made": not_made,
        "applied": applied,
        "queues": {},
        "tables": {},
        "mappings": [],
    }
    sqs, dynamodb, lam = client("sqs", endpoint), client("dynamodb", endpoint), client("lambda", endpoint)
    for r in resources:
        if r.get("ResourceType") == "AWS::SQS::Queue":
            url = r["PhysicalResourceId"]
            attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
            report["queues"][url.rsplit("/", 1)[-1]] = attributes
        elif r.get("ResourceType") == "AWS::DynamoDB::Table":
            name = r["PhysicalResourceId"]
            ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
            report["tables"][name] = ttl
        elif r.get("ResourceType") == "AWS::Lambda::Function":
            mappings = lam.list_event_source_mappings(FunctionName=r["PhysicalResourceId"])
            for m in mappings["EventSourceMappings"]:
                report["mappings"].append({k: v for k, v in m.items() if k != "LastModified"})
    json.dump(report, sys.stdout, indent=1, default=str)


if __name__ == "__main__":
    main()
