#!/usr/bin/env bash
# `make run`: the gateway with config/dev.toml against the local stack, using the app id and
# token in ./dev.env. Prints how to send a signed sample and read it back.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
set -a
# shellcheck disable=SC1091
source ./dev.env
set +a
cat <<'MSG'

hookbridge is starting on http://127.0.0.1:8080 (admin: http://127.0.0.1:9090/readyz, /metrics).
In another shell, send a signed sample webhook:

  set -a; source ./dev.env; set +a
  BODY=tests/fixtures/sendbird/group_channel__message_send.json
  curl -sS http://127.0.0.1:8080/webhooks/sendbird --data-binary @$BODY \
    -H "content-type: application/json" \
    -H "x-sendbird-signature: $(./target/debug/hookbridge sign --token-env HOOKBRIDGE_SENDBIRD_API_TOKENS $BODY)"

and read it back, decoded with the schema registry:

  make consume TOPIC=sendbird.group_channel

and notify the channel's other members, as the Sendbird tutorial does (examples/notify; the
variant tests/fixtures/sendbird/variants/group_channel__message_send.member_contacts.json has
members online and offline, with phone numbers and e-mail addresses in their metadata):

  make notify

Stack logs: .stack/logs/kafka.log and .stack/logs/registry.log. Ctrl-C stops the gateway;
`make stack-down` stops Kafka and the registry.

MSG
HOOKBRIDGE_CONFIG=config/dev.toml exec ./target/debug/hookbridge serve
