#!/usr/bin/env python3
"""Provision a Cognito user pool in moto and print real moto-minted tokens as JSON.

Used by tests/moto_e2e.rs. Usage:

    python3 tests/moto/cognito_setup.py --endpoint http://127.0.0.1:PORT

Creates a user pool, two app clients (no secret), a group ``admins`` and two users
(``alice`` in ``admins``, ``bob`` not), signs them in and prints ONE JSON object:

    {"pool_id", "client_id", "other_client_id",
     "users": {"alice": {"sub", "id_token", "access_token"}, "bob": {...}},
     "other_client": {"user", "id_token", "access_token"},
     "foreign_pool": {"pool_id", "client_id", "user", "id_token", "access_token"}}

``other_client`` holds alice's tokens from the second app client of the pool;
``foreign_pool`` holds tokens of a user in a second pool.

Only stdout carries the JSON; diagnostics go to stderr.
"""

import argparse
import json
import os
import sys

import boto3

REGION = "us-east-1"
PASSWORD = "Correct-Horse-9-Battery!"
AUTH_FLOWS = [
    "ALLOW_USER_PASSWORD_AUTH",
    "ALLOW_ADMIN_USER_PASSWORD_AUTH",
    "ALLOW_REFRESH_TOKEN_AUTH",
]


def client(endpoint):
    return boto3.client(
        "cognito-idp",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
        aws_session_token=os.environ.get("AWS_SESSION_TOKEN", "testing"),
    )


def make_app_client(idp, pool_id, name):
    # moto copies into the ID token only the user attributes the client may read;
    # without ReadAttributes there is no email / email_verified claim at all.
    resp = idp.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName=name,
        GenerateSecret=False,
        ExplicitAuthFlows=AUTH_FLOWS,
        ReadAttributes=["email", "email_verified"],
    )
    return resp["UserPoolClient"]["ClientId"]


def make_user(idp, pool_id, username, groups):
    resp = idp.admin_create_user(
        UserPoolId=pool_id,
        Username=username,
        UserAttributes=[
            {"Name": "email", "Value": f"{username}@example.com"},
            {"Name": "email_verified", "Value": "true"},
        ],
        MessageAction="SUPPRESS",
    )
    attrs = {a["Name"]: a["Value"] for a in resp["User"].get("Attributes", [])}
    idp.admin_set_user_password(
        UserPoolId=pool_id, Username=username, Password=PASSWORD, Permanent=True
    )
    for group in groups:
        idp.admin_add_user_to_group(
            UserPoolId=pool_id, Username=username, GroupName=group
        )
    return attrs.get("sub")


def sign_in(idp, client_id, username):
    resp = idp.initiate_auth(
        ClientId=client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": PASSWORD},
    )
    if "AuthenticationResult" not in resp:
        raise SystemExit(
            f"sign-in of {username} did not return tokens: challenge "
            f"{resp.get('ChallengeName')!r}"
        )
    result = resp["AuthenticationResult"]
    return {"id_token": result["IdToken"], "access_token": result["AccessToken"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="moto_server base URL")
    args = parser.parse_args()

    idp = client(args.endpoint)
    pool_id = idp.create_user_pool(
        PoolName="cognito-sidecar-e2e",
        AutoVerifiedAttributes=["email"],
        Schema=[
            {"Name": "email", "AttributeDataType": "String", "Mutable": True},
        ],
    )["UserPool"]["Id"]
    client_id = make_app_client(idp, pool_id, "sidecar-e2e")
    other_client_id = make_app_client(idp, pool_id, "sidecar-e2e-other")
    idp.create_group(UserPoolId=pool_id, GroupName="admins")

    users = {}
    for username, groups in (("alice", ["admins"]), ("bob", [])):
        sub = make_user(idp, pool_id, username, groups)
        tokens = sign_in(idp, client_id, username)
        users[username] = {"sub": sub, **tokens}

    other = {"user": "alice", **sign_in(idp, other_client_id, "alice")}

    # moto signs every pool's tokens with the same key (kid "dummy"), so a token from a
    # second pool has a valid signature and differs only in its issuer.
    foreign_pool_id = idp.create_user_pool(PoolName="cognito-sidecar-e2e-foreign")[
        "UserPool"
    ]["Id"]
    foreign_client_id = make_app_client(idp, foreign_pool_id, "sidecar-e2e-foreign")
    make_user(idp, foreign_pool_id, "mallory", [])
    foreign = {
        "pool_id": foreign_pool_id,
        "client_id": foreign_client_id,
        "user": "mallory",
        **sign_in(idp, foreign_client_id, "mallory"),
    }

    json.dump(
        {
            "endpoint": args.endpoint,
            "region": REGION,
            "pool_id": pool_id,
            "client_id": client_id,
            "other_client_id": other_client_id,
            "users": users,
            "other_client": other,
            "foreign_pool": foreign,
        },
        sys.stdout,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
