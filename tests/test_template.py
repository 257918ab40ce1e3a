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
        if table["stream_view"]:
            assert res["StreamSpecification"] == {"StreamViewType": table["stream_view"]}
        else:
            assert "StreamSpecification" not in res
        if table["ttl_attribute"]:
            assert res["TimeToLiveSpecification"] == {"AttributeName": table["ttl_attribute"], "Enabled": True}
        else:
            assert "TimeToLiveSpecification" not in res


def test_functions_are_arm64_rust_and_wired_to_the_dlq_and_schedule():
    resources = template()["Resources"]
    globals_ = template()["Globals"]["Function"]
    assert globals_["Runtime"] == "provided.al2023" and globals_["Architectures"] == ["arm64"]
    for name in ("RouterFunction", "TrackerFunction", "RulesSnapshotFunction"):
        assert resources[name]["Metadata"]["BuildMethod"] == "rust-cargolambda"
    router = resources["RouterFunction"]["Properties"]
    assert router["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Type"] == "SQS"
    rule = resources["ObjectCreatedRule"]["Properties"]
    assert rule["EventPattern"]["detail-type"] == ["Object Created"]
    assert "DeadLetterConfig" in rule["Targets"][0] and "RetryPolicy" in rule["Targets"][0]
    tracker = resources["TrackerFunction"]["Properties"]
    assert tracker["Events"]["EveryMinute"]["Properties"]["Schedule"] == "rate(1 minute)"
    assert tracker["Environment"]["Variables"]["ROUTER_MODE"] == "tracker"
    snapshot = resources["RulesSnapshotFunction"]["Properties"]
    assert snapshot["Environment"]["Variables"]["ROUTER_MODE"] == "rules"
    assert snapshot["Events"]["RulesChanged"]["Properties"]["Stream"] == {"GetAtt": "RulesTable.StreamArn"}
    assert "RULES_SNAPSHOT_URI" in globals_["Environment"]["Variables"]


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
    # The tracker dispatches the waiting line through the same rules: it reads the landing
    # bucket under the same condition as the router, and never otherwise.
    tracker_policies = t["Resources"]["TrackerFunction"]["Properties"]["Policies"]
    tracker_guarded = [p["If"] for p in tracker_policies if isinstance(p, dict) and "If" in p and p["If"][0] == "ReadsLandingObjects"]
    assert len(tracker_guarded) == 1
    tracker_by_sid = {s["Sid"]: s for s in statements(tracker_guarded[0][1])}
    assert set(tracker_by_sid["ReadObjectsForPlugins"]["Action"]) == {"s3:GetObject", "s3:GetObjectVersion"}
    unguarded = [s for p in tracker_policies if not (isinstance(p, dict) and "If" in p) for s in statements(p)]
    landing = {"Sub": "arn:${AWS::Partition}:s3:::${LandingBucketName}/*"}
    assert not any(s.get("Resource") == landing for s in unguarded)


def _alteryx_router_metrics(node):
    """(metric name, dimensions) of every AlteryxRouter metric an alarm uses."""
    if isinstance(node, dict):
        if node.get("Namespace") == "AlteryxRouter" and "MetricName" in node:
            yield node["MetricName"], node.get("Dimensions", [])
        for v in node.values():
            yield from _alteryx_router_metrics(v)
    elif isinstance(node, list):
        for v in node:
            yield from _alteryx_router_metrics(v)


def test_metrics_are_emf_and_alarms_watch_this_deployment_s_metrics_only():
    """The functions write EMF with the stack as the Deployment dimension, and every alarm on
    the AlteryxRouter namespace selects that dimension and a metric the code writes."""
    from emf import METRICS

    t = template()
    env = t["Globals"]["Function"]["Environment"]["Variables"]
    assert env["METRICS"] == "emf"
    assert env["METRICS_DEPLOYMENT"] == {"Ref": "AWS::StackName"}
    assert env["METRICS_BY_RULE"] == {"Ref": "MetricsPerRule"}
    alarms = {name: r["Properties"] for name, r in t["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    used = {name: list(_alteryx_router_metrics(props)) for name, props in alarms.items()}
    ours = {name for name, metrics in used.items() if metrics}
    assert ours == {"RoutingErrorsAlarm", "JobFailureRateAlarm", "TrackerCannotCheckJobsAlarm",
                    "StaleClaimsAlarm", "UncertainExecutionsAlarm"}
    for name in ours:
        for metric, dimensions in used[name]:
            assert metric in METRICS, f"{name} watches {metric}, which nothing writes"
            assert dimensions == [{"Name": "Deployment", "Value": {"Ref": "AWS::StackName"}}], name
    # The AWS metrics the template alarmed on before stay.
    assert {"RouterErrorsAlarm", "TrackerErrorsAlarm", "DeadLetterAlarm"} <= set(alarms)
    for name, props in alarms.items():
        assert props["AlarmActions"] == [{"Ref": "FailureTopic"}], name
        assert props["TreatMissingData"] == "notBreaching", f"{name}: no traffic is not an alarm"
    rate = {m["Id"]: m for m in alarms["JobFailureRateAlarm"]["Metrics"]}
    assert [i for i, m in rate.items() if m["ReturnData"]] == ["rate"]
    assert "failed" in rate["rate"]["Expression"] and "completed" in rate["rate"]["Expression"]


def test_the_dashboard_is_valid_json_over_our_metrics_and_shows_every_alarm():
    import re

    from emf import METRICS

    resources = template()["Resources"]
    body_template = resources["Dashboard"]["Properties"]["DashboardBody"]["Sub"]
    refs = set(re.findall(r"\$\{([^}!]+)\}", body_template))
    for ref in refs:
        name = ref.split(".")[0]
        assert name.startswith("AWS::") or name in resources, f"the dashboard refers to {ref}, not in the template"
    body = json.loads(re.sub(r"\$\{([^}!]+)\}", lambda m: f"SUB-{m.group(1)}", body_template))
    widgets = body["widgets"]
    for w in widgets:
        assert {"type", "x", "y", "width", "height", "properties"} <= set(w), w
        assert 0 <= w["x"] and w["x"] + w["width"] <= 24, w
    [alarm_widget] = [w for w in widgets if w["type"] == "alarm"]
    alarm_names = {name for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert {a.removeprefix("SUB-").removesuffix(".Arn") for a in alarm_widget["properties"]["alarms"]} == alarm_names
    named, searched = set(), set()
    for w in widgets:
        namespace = None
        for row in w["properties"].get("metrics", []):
            if isinstance(row[0], dict):
                searched.update(re.findall(r'MetricName="(\w+)"', row[0]["expression"]))
                continue
            if row[0] not in (".", "..."):
                namespace = row[0]
            if namespace == "AlteryxRouter" and row[0] != "...":
                named.add(row[1])
    assert named | searched <= set(METRICS), (named | searched) - set(METRICS)
    assert named == set(METRICS), f"every metric is on the dashboard: missing {set(METRICS) - named}"
    assert searched == {"JobsSubmitted", "Errors", "JobsFailed"}
    lambda_and_sqs = {row[0] for w in widgets for row in w["properties"].get("metrics", []) if isinstance(row[0], str)}
    assert {"AWS/Lambda", "AWS/SQS"} <= lambda_and_sqs


def policy_statements(function: str) -> list[dict]:
    return list(statements(template()["Resources"][function]["Properties"]["Policies"]))


def actions_of(statement: dict) -> list[str]:
    a = statement["Action"]
    return a if isinstance(a, list) else [a]


def test_alarms_reach_the_failure_topic_through_a_key_cloudwatch_may_use():
    resources = template()["Resources"]
    topic = resources["FailureTopic"]["Properties"]
    # Not the AWS-managed alias/aws/sns: CloudWatch alarms cannot publish under it.
    assert topic["KmsMasterKeyId"] == {"GetAtt": "FailureTopicKey.Arn"}, topic
    key = resources["FailureTopicKey"]
    assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True
    key_statements = key["Properties"]["KeyPolicy"]["Statement"]
    cloudwatch = [s for s in key_statements if s.get("Principal", {}).get("Service") == "cloudwatch.amazonaws.com"]
    assert len(cloudwatch) == 1, key_statements
    assert set(actions_of(cloudwatch[0])) >= {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert cloudwatch[0]["Effect"] == "Allow"
    # Without a statement delegating to IAM, the functions' policies could not use the key.
    assert any(s.get("Principal", {}).get("AWS") for s in key_statements)
    publishers = [n for n, r in resources.items() if r["Type"] == "AWS::Serverless::Function"
                  and "FAILURE_TOPIC_ARN" in r["Properties"].get("Environment", {}).get("Variables", {})]
    assert {"RouterFunction", "TrackerFunction"} <= set(publishers)
    for function in publishers:
        found = policy_statements(function)
        kms = [s for s in found if "kms:GenerateDataKey*" in actions_of(s)]
        assert kms and kms[0]["Resource"] == {"GetAtt": "FailureTopicKey.Arn"}, function
        assert any("sns:Publish" in actions_of(s) and s["Resource"] == {"Ref": "FailureTopic"} for s in found), function
    alarms = {n: r for n, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert {"RouterErrorsAlarm", "TrackerErrorsAlarm", "DeadLetterAlarm", "StaleClaimsAlarm"} <= set(alarms)
    for name, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "FailureTopic"}], name


def test_the_stale_claim_alarm_reads_the_trackers_metric():
    """Every tracker pass writes StaleClaims (EMF); a pass counts the same claim again until it
    is repaired, so the alarm takes the maximum."""
    from emf import METRICS

    resources = template()["Resources"]
    assert not [n for n, r in resources.items() if r["Type"] == "AWS::Logs::MetricFilter"], "metrics come from EMF"
    alarm = resources["StaleClaimsAlarm"]["Properties"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AlteryxRouter", "StaleClaims")
    assert "StaleClaims" in METRICS
    assert alarm["Statistic"] == "Maximum"
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold" and alarm["Threshold"] == 0
    tracker_env = resources["TrackerFunction"]["Properties"]["Environment"]["Variables"]
    assert int(tracker_env["TRACK_STALE_AFTER_SECONDS"]) > 0


def test_the_functions_may_make_the_calls_the_delivery_guarantees_need():
    resources = template()["Resources"]
    for function in ("RouterFunction", "TrackerFunction"):
        found = policy_statements(function)
        on_table = [a for s in found if s["Resource"] == {"GetAtt": "ExecutionsTable.Arn"} for a in actions_of(s)]
        # TransactWriteItems is authorized per item as PutItem; job owners are read in batches.
        assert {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:BatchGetItem"} <= set(on_table), function
        # A concurrency group's counter changes with an Update in the same transaction.
        assert "dynamodb:UpdateItem" in on_table, function
        on_index = [a for s in found if "index/status-created_at-index" in json.dumps(s["Resource"]) for a in actions_of(s)]
        assert on_index == ["dynamodb:Query"], function
    router_env = resources["RouterFunction"]["Properties"]["Environment"]["Variables"]
    assert "CLAIM_LEASE_SECONDS" not in router_env, "retired: leases end with the invocation"
    assert int(router_env["CLAIM_LEASE_MARGIN_SECONDS"]) > 0
    assert router_env["FAILURE_TOPIC_ARN"] == {"Ref": "FailureTopic"}


def test_the_tracker_may_dispatch_the_waiting_line():
    """The tracker routes waiting executions: it reads the rules (table and snapshot), runs
    plugins like the router, and is told its dispatch limits."""
    found = policy_statements("TrackerFunction")
    on_rules = [a for s in found if s["Resource"] == {"GetAtt": "RulesTable.Arn"} for a in actions_of(s)]
    assert "dynamodb:Scan" in on_rules
    assert any("rules/snapshot.bin" in json.dumps(s["Resource"]) for s in found)
    assert any(s.get("Sid") == "ReadObjectsForPlugins" for s in found)
    env = template()["Resources"]["TrackerFunction"]["Properties"]["Environment"]["Variables"]
    assert int(env["TRACK_MAX_DISPATCH"]) > 0 and int(env["WAITING_GIVE_UP_SECONDS"]) >= 3600
    timeout = template()["Resources"]["TrackerFunction"]["Properties"]["Timeout"]
    assert int(env["TRACK_BUDGET_SECONDS"]) < timeout
    # Repeated passes while a line waits: the last one starts before TRACK_REPEAT_FOR_SECONDS
    # and must still fit a whole budget in the timeout, within the one-minute schedule.
    repeat, repeat_for = int(env["TRACK_REPEAT_SECONDS"]), int(env["TRACK_REPEAT_FOR_SECONDS"])
    assert 0 < repeat < repeat_for <= 60
    assert repeat_for - repeat + int(env["TRACK_BUDGET_SECONDS"]) <= timeout


def test_the_router_has_a_reserved_concurrency_by_default():
    """A burst of uploads is routed by a bounded number of functions (jobs at Alteryx are
    capped per rule); -1 still lets an operator turn it off."""
    t = template()
    param = t["Parameters"]["ReservedConcurrency"]
    assert 0 < param["Default"] <= 100 and param["MinValue"] == -1
    router = t["Resources"]["RouterFunction"]["Properties"]
    assert router["ReservedConcurrentExecutions"]["If"][1] == {"Ref": "ReservedConcurrency"}
