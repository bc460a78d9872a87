#!/usr/bin/env python3
"""Every IAM policy document of template.yaml, as JSON parliament can read.

CloudFormation's short tags are read as their long forms and resolved to placeholder values:
`!Sub` text gets `${AWS::Partition}` = aws, `${AWS::Region}` = us-east-1, `${AWS::AccountId}` =
123456789012, `${AWS::StackName}` = ir, `${X.Arn}` = a placeholder ARN of X's type, `${Parameter}` = a placeholder value of the
parameter (PARAMETERS); `!GetAtt X.Arn` and `!Ref X` likewise; `!If` keeps both branches'
statements, and a policy under `!If` (a role's policy only some deployments have) is read as the
policy it is when its condition holds.

Usage: template_policies.py TEMPLATE OUT_DIR  (one OUT_DIR/<Resource>.<Policy>.json per document)
"""
import json
import os
import re
import sys

import yaml

ACCOUNT = "123456789012"

# Parameters as a deployment sets them, where the policies need a value of their shape.
PARAMETERS = {
    "ConfigSsmParameter": "/ir/config",
    "SlackSecretArn": f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:ir/slack-AbCdEf",
    "JiraSecretArn": f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:ir/jira-AbCdEf",
}


class Tagged:
    def __init__(self, tag, value):
        self.tag, self.value = tag, value


def construct(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return Tagged(suffix, value)


yaml.SafeLoader.add_multi_constructor("!", construct)


def placeholder_arn(resources, logical_id):
    kind = resources.get(logical_id, {}).get("Type", "")
    name = f"ir-{logical_id}"
    return {
        "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT}:role/ir-suite/{name}",
        "AWS::IAM::ManagedPolicy": f"arn:aws:iam::{ACCOUNT}:policy/ir-suite/{name}",
        "AWS::DynamoDB::Table": f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{name}",
        "AWS::S3::Bucket": f"arn:aws:s3:::{name.lower()}",
        "AWS::KMS::Key": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/00000000-0000-0000-0000-000000000000",
        "AWS::SNS::Topic": f"arn:aws:sns:us-east-1:{ACCOUNT}:{name}",
        "AWS::SQS::Queue": f"arn:aws:sqs:us-east-1:{ACCOUNT}:{name}",
        "AWS::Logs::LogGroup": f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{name}:*",
        "AWS::Serverless::Function": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}",
        "AWS::Serverless::StateMachine": f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:{name}",
        "AWS::Events::Rule": f"arn:aws:events:us-east-1:{ACCOUNT}:rule/{name}",
    }.get(kind, f"arn:aws:iam::{ACCOUNT}:role/ir-suite/{name}")


def resolve(v, resources):
    if isinstance(v, Tagged):
        if v.tag == "Sub":
            text, extra = (v.value, {}) if isinstance(v.value, str) else (v.value[0], v.value[1])
            def var(m):
                name = m.group(1)
                fixed = {"AWS::Partition": "aws", "AWS::Region": "us-east-1",
                         "AWS::AccountId": ACCOUNT, "AWS::StackName": "ir"}
                if name in fixed:
                    return fixed[name]
                if name in extra:
                    return str(resolve(extra[name], resources))
                if name in PARAMETERS:
                    return PARAMETERS[name]
                return placeholder_arn(resources, name.split(".")[0])
            return re.sub(r"\$\{([^}]+)\}", var, text)
        if v.tag == "GetAtt":
            target = v.value.split(".")[0] if isinstance(v.value, str) else v.value[0]
            return placeholder_arn(resources, target)
        if v.tag == "Ref":
            if v.value == "AWS::NoValue":
                return None
            if v.value.startswith("AWS::"):
                return {"AWS::AccountId": ACCOUNT, "AWS::Region": "us-east-1",
                        "AWS::Partition": "aws"}.get(v.value, "ir")
            if v.value in resources:
                return placeholder_arn(resources, v.value)
            if v.value in PARAMETERS:
                return PARAMETERS[v.value]
            return f"placeholder-{v.value.lower()}"  # a parameter
        if v.tag == "If":
            return [resolve(b, resources) for b in v.value[1:]]
        if v.tag == "Split":
            return str(resolve(v.value[1], resources)).split(v.value[0])
        if v.tag == "Select":
            return resolve(v.value[1], resources)[int(v.value[0])]
        return resolve(v.value, resources)
    if isinstance(v, list):
        return [resolve(x, resources) for x in v]
    if isinstance(v, dict):
        return {k: resolve(x, resources) for k, x in v.items()}
    return v


def statements(doc):
    out = []
    for s in doc.get("Statement", []) if isinstance(doc.get("Statement"), list) else [doc["Statement"]]:
        if isinstance(s, list):  # both branches of an !If
            out.extend(b for b in s if isinstance(b, dict))
        elif isinstance(s, dict):
            out.append(s)
    return out


def documents(template):
    resources = template["Resources"]
    for rid, r in resources.items():
        # IAM's own policy documents: roles' inline policies and managed policies (resource
        # policies of buckets, keys, queues, topics and tables are checkov's).
        if r.get("Type") not in ("AWS::IAM::Role", "AWS::IAM::ManagedPolicy"):
            continue
        props = r.get("Properties", {})
        docs = []
        for p in props.get("Policies", []) or []:
            if isinstance(p, Tagged) and p.tag == "If":
                p = next((b for b in p.value[1:] if isinstance(b, dict)), None)
            if isinstance(p, dict) and "PolicyDocument" in p:
                docs.append((p.get("PolicyName", "policy"), p["PolicyDocument"]))
        if "PolicyDocument" in props:
            docs.append(("policy", props["PolicyDocument"]))
        for name, doc in docs:
            resolved = resolve(doc, resources)
            # Condition values that resolved to both branches of an !If: keep the first.
            stmts = []
            for s in statements(resolved):
                if isinstance(s.get("Condition"), list):
                    s = dict(s, Condition=next((c for c in s["Condition"] if isinstance(c, dict)), {}))
                # A list of resources some of which are under !If: both branches, flattened,
                # without the AWS::NoValue ones.
                if isinstance(s.get("Resource"), list):
                    flat = []
                    for r in s["Resource"]:
                        flat.extend(r if isinstance(r, list) else [r])
                    s = dict(s, Resource=[r for r in flat if r is not None])
                stmts.append(s)
            yield f"{rid}.{name}", {"Version": "2012-10-17", "Statement": stmts}


def main():
    template_path, out_dir = sys.argv[1], sys.argv[2]
    with open(template_path) as f:
        template = yaml.safe_load(f)
    os.makedirs(out_dir, exist_ok=True)
    for key, doc in documents(template):
        with open(os.path.join(out_dir, f"{key}.json"), "w") as f:
            json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
