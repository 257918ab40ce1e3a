"""The widely copied recipe, as the baseline: read ALTERYX_URL/KEY/SECRET from Secrets Manager,
sign with OAuth1 (query), POST one job for one hard-coded workflow. Kept as the recipe does it
(clients created per invocation), plus the file's location as question values so the two
implementations do comparable work."""

import json
import os

import boto3
import requests
from requests_oauthlib import OAuth1


def handler(event, context):
    client = boto3.client("secretsmanager")
    secret = json.loads(client.get_secret_value(SecretId=os.environ["SECRET_ID"])["SecretString"])
    url, key, secret_value = secret["ALTERYX_URL"], secret["ALTERYX_KEY"], secret["ALTERYX_SECRET"]
    obj = event["detail"]["object"]
    bucket = event["detail"]["bucket"]["name"]
    questions = [
        {"name": "InputPath", "value": f"s3://{bucket}/{obj['key']}"},
        {"name": "FileName", "value": obj["key"].rsplit("/", 1)[-1]},
    ]
    auth = OAuth1(key, secret_value, signature_type="query")
    response = requests.post(url + f"v1/workflows/{os.environ['APP_ID']}/jobs/", auth=auth, json={"questions": questions})
    response.raise_for_status()
    return {"statusCode": 200, "job": response.json().get("id")}
