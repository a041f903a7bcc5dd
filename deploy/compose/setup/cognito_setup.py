#!/usr/bin/env python3
"""Provision a demo user pool in a Cognito emulator and write the sidecar config.

The one-shot `setup` service of deploy/compose/compose.yaml runs ``provision`` against
moto, or against cognito-local with compose.cognito-local.yaml; the README's walkthrough
runs ``token`` to sign a user in. tests/docs.rs runs both against a native moto_server
and a native cognito-local.

    cognito_setup.py provision   # pool, app client, group `admins`, users alice + bob,
                                 # then config.toml for the sidecar
    cognito_setup.py token alice [--id]   # prints a fresh access (or ID) token

``provision`` is idempotent: it reuses the pool, client, group and users it finds.
Settings come from flags or environment variables (defaults are the compose ones):

    COGNITO_ENDPOINT  emulator API            http://moto:5000
    JWKS_BASE         emulator as the sidecar reaches it (JWKS URL)   = COGNITO_ENDPOINT
    TEMPLATE          sidecar config template /app/sidecar.toml
                      (/app/sidecar.cognito-local.toml for cognito-local)
    CONFIG_OUT        written sidecar config  /config/config.toml
    STATE_FILE        pool and client ids     /config/cognito.json
"""

import argparse
import json
import os
import sys
import time

import boto3
import botocore.exceptions

REGION = "us-east-1"
POOL_NAME = "cognito-sidecar-demo"
CLIENT_NAME = "cognito-sidecar-demo"
# Demo credentials for an emulator on your machine; never use them anywhere real.
PASSWORD = "Demo-Passw0rd!"
USERS = {"alice": ["admins"], "bob": []}
# The template's placeholders (a valid pool id and client id, so the template loads),
# and the emulator's compose address, one per template, replaced by JWKS_BASE.
TEMPLATE_POOL_ID = "us-east-1_Example0"
TEMPLATE_CLIENT_ID = "example-client-id"
TEMPLATE_JWKS_BASES = ("http://moto:5000", "http://cognito-local:9229")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def idp_client(endpoint):
    return boto3.client(
        "cognito-idp",
        endpoint_url=endpoint,
        region_name=REGION,
        # The emulators accept any credentials; these are not secrets.
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
    )


def wait_for(idp, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            idp.list_user_pools(MaxResults=1)
            return
        except (botocore.exceptions.EndpointConnectionError,
                botocore.exceptions.ConnectionClosedError) as e:
            if time.monotonic() > deadline:
                raise SystemExit(f"Cognito emulator not reachable: {e}")
            time.sleep(1)


def find_pool(idp):
    for page in idp.get_paginator("list_user_pools").paginate(MaxResults=60):
        for pool in page["UserPools"]:
            if pool["Name"] == POOL_NAME:
                return pool["Id"]
    return None


def ensure_pool(idp):
    pool_id = find_pool(idp)
    if pool_id:
        log(f"reusing user pool {pool_id}")
        return pool_id
    pool_id = idp.create_user_pool(
        PoolName=POOL_NAME,
        AutoVerifiedAttributes=["email"],
        Schema=[{"Name": "email", "AttributeDataType": "String", "Mutable": True}],
    )["UserPool"]["Id"]
    log(f"created user pool {pool_id}")
    return pool_id


def ensure_client(idp, pool_id):
    resp = idp.list_user_pool_clients(UserPoolId=pool_id, MaxResults=60)
    for c in resp["UserPoolClients"]:
        if c["ClientName"] == CLIENT_NAME:
            return c["ClientId"]
    # Without ReadAttributes moto puts no email claims into ID tokens.
    return idp.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName=CLIENT_NAME,
        GenerateSecret=False,
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        ReadAttributes=["email", "email_verified"],
    )["UserPoolClient"]["ClientId"]


def ensure_group(idp, pool_id, group):
    try:
        idp.create_group(UserPoolId=pool_id, GroupName=group)
    except idp.exceptions.GroupExistsException:
        pass


def ensure_user(idp, pool_id, username, groups):
    try:
        idp.admin_create_user(
            UserPoolId=pool_id,
            Username=username,
            UserAttributes=[
                {"Name": "email", "Value": f"{username}@example.com"},
                {"Name": "email_verified", "Value": "true"},
            ],
            MessageAction="SUPPRESS",
        )
    except idp.exceptions.UsernameExistsException:
        pass
    idp.admin_set_user_password(
        UserPoolId=pool_id, Username=username, Password=PASSWORD, Permanent=True
    )
    for group in groups:
        idp.admin_add_user_to_group(UserPoolId=pool_id, Username=username, GroupName=group)


def render_config(template, pool_id, client_id, jwks_base):
    for placeholder in (TEMPLATE_POOL_ID, TEMPLATE_CLIENT_ID):
        if placeholder not in template:
            raise SystemExit(f"template has no {placeholder!r} to replace")
    bases = [b for b in TEMPLATE_JWKS_BASES if b in template]
    if len(bases) != 1:
        raise SystemExit(f"template must name exactly one of {TEMPLATE_JWKS_BASES}")
    return (
        template.replace(bases[0], jwks_base.rstrip("/"))
        .replace(TEMPLATE_POOL_ID, pool_id)
        .replace(TEMPLATE_CLIENT_ID, client_id)
    )


def write_atomically(path, text):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def provision(args):
    idp = idp_client(args.endpoint)
    wait_for(idp)
    pool_id = ensure_pool(idp)
    client_id = ensure_client(idp, pool_id)
    for groups in USERS.values():
        for group in groups:
            ensure_group(idp, pool_id, group)
    for username, groups in USERS.items():
        ensure_user(idp, pool_id, username, groups)
    with open(args.template, encoding="utf-8") as f:
        config = render_config(f.read(), pool_id, client_id, args.jwks_base or args.endpoint)
    write_atomically(args.config_out, config)
    state = {"endpoint": args.endpoint, "region": REGION, "pool_id": pool_id,
             "client_id": client_id, "users": sorted(USERS)}
    write_atomically(args.state_file, json.dumps(state, indent=2) + "\n")
    log(f"wrote {args.config_out} and {args.state_file}")
    print(json.dumps(state))


def token(args):
    with open(args.state_file, encoding="utf-8") as f:
        state = json.load(f)
    idp = idp_client(args.endpoint or state["endpoint"])
    resp = idp.initiate_auth(
        ClientId=state["client_id"],
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": args.user, "PASSWORD": PASSWORD},
    )
    result = resp.get("AuthenticationResult")
    if not result:
        raise SystemExit(f"sign-in of {args.user} returned no tokens: {resp.get('ChallengeName')}")
    print(result["IdToken"] if args.id else result["AccessToken"])


def main():
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-file", default=env("STATE_FILE", "/config/cognito.json"))
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("provision", help="create pool, client, group, users; write config")
    p.add_argument("--endpoint", default=env("COGNITO_ENDPOINT", "http://moto:5000"))
    p.add_argument("--jwks-base", default=env("JWKS_BASE"))
    p.add_argument("--template", default=env("TEMPLATE", "/app/sidecar.toml"))
    p.add_argument("--config-out", default=env("CONFIG_OUT", "/config/config.toml"))
    p.set_defaults(func=provision)
    t = sub.add_parser("token", help="sign a demo user in and print a token")
    t.add_argument("user", choices=sorted(USERS))
    t.add_argument("--id", action="store_true", help="print the ID token, not the access token")
    t.add_argument("--endpoint", default=env("COGNITO_ENDPOINT"))
    t.set_defaults(func=token)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
