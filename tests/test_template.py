"""The SAM template: cfn-lint passes, IAM grants no wildcard resource on data APIs, and the
tables are exactly those `alteryx-router tables create` makes (no key-schema drift)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import ROOT

TEMPLATE = ROOT / "template.yaml"
DATA_SERVICES = ("dynamodb:", "secretsmanager:", "s3:", "sqs:", "sns:")


class CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation short-form tags (!Ref, !Sub, ...) as plain data."""


def _tag(loader, tag_suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {tag_suffix: value}


CfnLoader.add_multi_constructor("!", _tag)


def template() -> dict:
    return yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)


def test_cfn_lint_passes():
    lint = Path(sys.executable).parent / "cfn-lint"
    out = subprocess.run([str(lint), str(TEMPLATE)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


def statements(node):
    """Every IAM statement anywhere in the template (inside !If branches too)."""
    if isinstance(node, dict):
        if "Effect" in node and "Action" in node:
            yield node
        for v in node.values():
            yield from statements(v)
    elif isinstance(node, list):
        for v in node:
            yield from statements(v)


def test_no_wildcard_resources_on_data_apis():
    found = list(statements(template()["Resources"]))
    assert len(found) >= 8, "the functions' policies are where we expect them"
    for s in found:
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        if not any(a.startswith(DATA_SERVICES) for a in actions):
            continue
        resources = s.get("Resource")
        resources = resources if isinstance(resources, list) else [resources]
        for r in resources:
            assert r != "*" and not (isinstance(r, str) and r.endswith(":*")), f"wildcard resource in {s}"
        assert not any(a.endswith(":*") or a == "*" for a in actions), f"wildcard action in {s}"


def test_tables_match_the_cli_definition(router_bin):
    spec = json.loads(subprocess.run([str(router_bin), "tables", "spec"], capture_output=True, text=True, check=True).stdout)
    resources = template()["Resources"]
    for table in spec.values():
        res = resources[table["logical_name"]]["Properties"]
        assert res["BillingMode"] == "PAY_PER_REQUEST"
        assert res["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
        assert res["KeySchema"] == [{"AttributeName": table["partition_key"]["name"], "KeyType": "HASH"}]
        want_attrs = {table["partition_key"]["name"]: table["partition_key"]["type"]}
        want_indexes = []
        for index in table["indexes"]:
            keys = [{"AttributeName": index["partition_key"]["name"], "KeyType": "HASH"}]
            want_attrs[index["partition_key"]["name"]] = index["partition_key"]["type"]
            if index["sort_key"]:
                keys.append({"AttributeName": index["sort_key"]["name"], "KeyType": "RANGE"})
                want_attrs[index["sort_key"]["name"]] = index["sort_key"]["type"]
            want_indexes.append({"IndexName": index["name"], "KeySchema": keys, "Projection": {"ProjectionType": index["projection"]}})
        assert {a["AttributeName"]: a["AttributeType"] for a in res["AttributeDefinitions"]} == want_attrs
        assert res.get("GlobalSecondaryIndexes", []) == want_indexes
        if table["ttl_attribute"]:
            assert res["TimeToLiveSpecification"] == {"AttributeName": table["ttl_attribute"], "Enabled": True}
        else:
            assert "TimeToLiveSpecification" not in res


def test_functions_are_arm64_rust_and_wired_to_the_dlq_and_schedule():
    resources = template()["Resources"]
    globals_ = template()["Globals"]["Function"]
    assert globals_["Runtime"] == "provided.al2023" and globals_["Architectures"] == ["arm64"]
    for name in ("RouterFunction", "TrackerFunction"):
        assert resources[name]["Metadata"]["BuildMethod"] == "rust-cargolambda"
    router = resources["RouterFunction"]["Properties"]
    assert router["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Type"] == "SQS"
    rule = resources["ObjectCreatedRule"]["Properties"]
    assert rule["EventPattern"]["detail-type"] == ["Object Created"]
    assert "DeadLetterConfig" in rule["Targets"][0] and "RetryPolicy" in rule["Targets"][0]
    tracker = resources["TrackerFunction"]["Properties"]
    assert tracker["Events"]["EveryMinute"]["Properties"]["Schedule"] == "rate(1 minute)"
    assert tracker["Environment"]["Variables"]["ROUTER_MODE"] == "tracker"


def test_only_operators_may_write_the_plugin_bucket():
    """A .cwasm is native code that runs with the functions' role: the functions read the
    plugin bucket, the publisher policy (for operators running `plugin publish`) writes it."""
    resources = template()["Resources"]
    for name in ("RouterFunction", "TrackerFunction"):
        for s in statements(resources[name]["Properties"].get("Policies", [])):
            actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
            assert not any(a.startswith("s3:Put") or a.startswith("s3:Delete") for a in actions), f"{name} may write S3: {s}"
    publisher = list(statements(resources["PluginPublisherPolicy"]["Properties"]["PolicyDocument"]))
    assert any("s3:PutObject" in s["Action"] for s in publisher)
    assert any("dynamodb:PutItem" in s["Action"] for s in publisher)
    reads = [s for s in statements(resources["RouterFunction"]["Properties"]["Policies"]) if s.get("Sid") == "ReadLandingObjects"]
    assert reads and "s3:GetObjectVersion" in reads[0]["Action"], "plugins read the event's version"


def test_rules_may_name_secrets_under_the_prefix():
    """A rule's own secret_id works when deployed: both functions may read every secret under
    AlteryxSecretPrefix (the tracker polls with the rule's secret too), and the CLI learns the
    prefix from ALTERYX_SECRET_PREFIX to warn about rules outside it."""
    t = template()
    param = t["Parameters"]["AlteryxSecretPrefix"]
    assert param["Default"] == "alteryx/" and param["MinLength"] == 1, "an empty prefix would grant every secret"
    assert t["Globals"]["Function"]["Environment"]["Variables"]["ALTERYX_SECRET_PREFIX"] == {"Ref": "AlteryxSecretPrefix"}
    for name in ("RouterFunction", "TrackerFunction"):
        granted = [
            s["Resource"]
            for s in statements(t["Resources"][name]["Properties"]["Policies"])
            if s.get("Sid") == "ReadRuleSecrets"
        ]
        assert granted == [{"Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${AlteryxSecretPrefix}*"}], name
        actions = [s["Action"] for s in statements(t["Resources"][name]["Properties"]["Policies"]) if s.get("Sid") == "ReadRuleSecrets"]
        assert actions == ["secretsmanager:GetSecretValue"], name


def test_presigned_urls_and_metadata_grant_reading_the_landing_bucket():
    """A pre-signed URL is only as good as the signer's permission, and a metadata HEAD needs
    s3:GetObject: PresignedUrlsAndMetadata=true grants the router the same read as plugins."""
    t = template()
    assert t["Parameters"]["PresignedUrlsAndMetadata"]["Default"] == "false"
    conditions = t["Conditions"]
    assert conditions["ObjectTemplates"] == {"Equals": [{"Ref": "PresignedUrlsAndMetadata"}, "true"]}
    assert conditions["ReadsLandingObjects"] == {"Or": [{"Condition": "Plugins"}, {"Condition": "ObjectTemplates"}]}
    policies = t["Resources"]["RouterFunction"]["Properties"]["Policies"]
    guarded = [p["If"] for p in policies if isinstance(p, dict) and "If" in p and p["If"][0] == "ReadsLandingObjects"]
    assert len(guarded) == 1
    by_sid = {s["Sid"]: s for s in statements(guarded[0][1])}
    assert set(by_sid["ReadLandingObjects"]["Action"]) == {"s3:GetObject", "s3:GetObjectVersion"}
    assert by_sid["ReadLandingObjects"]["Resource"] == {"Sub": "arn:${AWS::Partition}:s3:::${LandingBucketName}/*"}
    assert by_sid["TellDeletedLandingObjects"]["Action"] == "s3:ListBucket"
    # The tracker never reads objects.
    tracker = list(statements(t["Resources"]["TrackerFunction"]["Properties"]["Policies"]))
    assert not any("s3:GetObject" in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]]) for s in tracker)
