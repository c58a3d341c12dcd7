#!/bin/sh
# Refuses to start a service while one of its secrets still holds an example value from .env.example.
#
#   sh refuse-example-secrets.sh NAME... [-- COMMAND [ARG...]]
#
# Each NAME is an environment variable that holds a secret, or a URL with one in it. When any of them
# contains "change-me" (every example secret in .env.example does), this prints one line on stderr and
# exits 1; otherwise it runs COMMAND in its own place (nothing when no command is given). compose's
# ${VAR:?} refuses an empty secret; this refuses the example one. Plain POSIX sh, so that it runs in
# every image of docker-compose.yml.

while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
    case "$1" in
        "" | [0-9]* | *[!A-Za-z0-9_]*)
            echo "refuse-example-secrets.sh: not a variable name: '$1'" >&2
            exit 2
            ;;
    esac
    eval "value=\${$1-}"
    case "$value" in
        *change-me*)
            echo "$1 still holds an example value from .env.example: replace every change-me in .env" >&2
            exit 1
            ;;
    esac
    shift
done
if [ "$#" -gt 0 ]; then
    shift
fi
if [ "$#" -eq 0 ]; then
    exit 0
fi
exec "$@"
