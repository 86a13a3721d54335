"""Translates a SAM template to plain CloudFormation with AWS's aws-sam-translator, as `sam
deploy` does after `sam package`: each function's local CodeUri is first replaced by an S3
location (s3://BUCKET/FUNCTION.zip), as packaging would.

usage: sam_translate.py TEMPLATE.yaml OUT.json BUCKET
"""
import json
import sys

from cfnlint.decode import cfn_yaml
from samtranslator.translator.transform import transform


class NoManagedPolicies:
    """The templates lpipe writes name no managed policy: nothing to look up in IAM."""

    def load(self):
        return {}


def main():
    source, out, bucket = sys.argv[1:4]
    template = cfn_yaml.load(source)
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = f"s3://{bucket}/{logical_id}.zip"
    translated = transform(template, {}, NoManagedPolicies())
    with open(out, "w") as f:
        json.dump(translated, f, indent=1, default=str)


if __name__ == "__main__":
    main()
