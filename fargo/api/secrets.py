"""The Secrets Manager face: each request, already checked against botocore's secretsmanager
shape by awsjson.dispatch_json, becomes a call to control/secrets.py with named arguments;
the record it returns is rendered in the API's own member names."""

from __future__ import annotations

from ..control.secrets import Secret, Secrets
from .awsjson import Handler, JsonObject

SERVICE = "secretsmanager"
_CURRENT = ("AWSCURRENT",)  # fargo keeps one version of each secret


def _version(s: Secret) -> JsonObject:
    return {"ARN": s.arn, "Name": s.name, "VersionId": s.version_id}


def _description(s: Secret) -> JsonObject:
    return {"ARN": s.arn, "Name": s.name, "Description": s.description,
            "LastChangedDate": s.changed, "CreatedDate": s.created, "Tags": s.tags}


def handlers(secrets: Secrets) -> dict[str, Handler]:
    """Action name -> handler(params, region), as awsjson.dispatch_json calls them."""

    def create_secret(p: JsonObject, region: str) -> JsonObject:
        s = secrets.create_secret(p["Name"], region, value=p.get("SecretString"),
                                  binary=p.get("SecretBinary"),
                                  description=p.get("Description", ""),
                                  client_token=p.get("ClientRequestToken"),
                                  tags=p.get("Tags"))
        return _version(s)

    def put_secret_value(p: JsonObject, region: str) -> JsonObject:
        s = secrets.put_secret_value(p["SecretId"], value=p.get("SecretString"),
                                     binary=p.get("SecretBinary"),
                                     client_token=p.get("ClientRequestToken"))
        return {**_version(s), "VersionStages": _CURRENT}

    def get_secret_value(p: JsonObject, region: str) -> JsonObject:
        s = secrets.find(p["SecretId"])
        return {**_version(s), "SecretString": s.value, "VersionStages": _CURRENT,
                "CreatedDate": s.created}

    def describe_secret(p: JsonObject, region: str) -> JsonObject:
        return _description(secrets.find(p["SecretId"]))

    def list_secrets(p: JsonObject, region: str) -> JsonObject:
        return {"SecretList": [_description(s) for s in secrets.list_secrets()]}

    def delete_secret(p: JsonObject, region: str) -> JsonObject:
        s, when = secrets.delete_secret(p["SecretId"])
        return {"ARN": s.arn, "Name": s.name, "DeletionDate": when}

    return {"CreateSecret": create_secret, "GetSecretValue": get_secret_value,
            "PutSecretValue": put_secret_value, "DescribeSecret": describe_secret,
            "ListSecrets": list_secrets, "DeleteSecret": delete_secret}
