#!/bin/sh
# Entrypoint of the asterisk service in docker-compose.yml. It runs as root
# before the image's own entrypoint, then execs the command it was given.
#
# 1. Hooks the Hotline sample config (mounted read-only at
#    /etc/asterisk/hotline) into the image's stock config with #include lines,
#    the same lines README.md asks for on a host. Idempotent: a restarted
#    container does not add them twice.
# 2. Writes the site-local overrides those files #tryinclude:
#    hotline-manager-local.conf  the AMI secret (from the ami_secret compose
#                                secret) and the AMI bind address
#    hotline-http-local.conf     the HTTP (metrics) bind address
#    The bind address is the container's own address on the compose network:
#    private, reachable by the hotline and prometheus services, and never
#    0.0.0.0.
# 3. For a second site's Asterisk (docker-compose.site2.yml), when set:
#    ASTERISK_SYSTEMNAME  asterisk.conf's systemname (hotline-asterisk-local.conf,
#                         #tryinclude'd by the stock asterisk.conf): it prefixes
#                         every Uniqueid, so several PBXs' call ids never clash
#    HOTLINE_BACKEND      the dialplan global naming the FastAGI host (the
#                         site's own hotline service), after the Hotline globals
#
# The paths can be overridden for a dry run outside a container.
set -eu

etc=${ASTERISK_ETC:-/etc/asterisk}
secret_file=${HOTLINE_AMI_SECRET_FILE:-/run/secrets/ami_secret}

die() {
    echo "hotline compose-entrypoint: $*" >&2
    exit 1
}

# append_include FILE: add "#include hotline/FILE" at the end of the stock FILE.
append_include() {
    line="#include hotline/$1"
    [ -f "$etc/$1" ] || die "$etc/$1 is missing: this image has no stock $1"
    grep -qxF "$line" "$etc/$1" || printf '\n%s\n' "$line" >>"$etc/$1"
}

for conf in extensions.conf manager.conf modules.conf http.conf prometheus.conf \
    pjsip.conf musiconhold.conf voicemail.conf rtp.conf; do
    append_include "$conf"
done

# The dialplan globals belong inside the stock [globals] section.
globals_line='#include hotline/extensions_globals.conf'
if ! grep -qxF "$globals_line" "$etc/extensions.conf"; then
    grep -q '^\[globals\]' "$etc/extensions.conf" \
        || die "$etc/extensions.conf has no [globals] section to include the Hotline globals in"
    sed -i "/^\[globals\]/a $globals_line" "$etc/extensions.conf"
fi

[ -r "$secret_file" ] || die "no AMI secret at $secret_file (the ami_secret compose secret)"
secret=$(cat "$secret_file")
# The secret goes into an Asterisk config line, where ";" starts a comment:
# accept only characters that need no escaping (openssl rand -hex 32 fits).
case $secret in
    '' | *[!A-Za-z0-9._~+/=-]*)
        die "the AMI secret must be non-empty and use only A-Z a-z 0-9 . _ ~ + / = -" ;;
esac
[ "${#secret}" -ge 16 ] || die "the AMI secret is shorter than 16 characters"

hostname=$(cat /proc/sys/kernel/hostname)
address=$(getent ahostsv4 "$hostname" | awk 'NR == 1 { print $1 }')
[ -n "$address" ] || die "cannot find this container's address ($hostname)"

umask 027
{
    echo "; Written by compose-entrypoint.sh at container start. Do not edit."
    echo "[general](+)"
    echo "bindaddr = $address"
    echo
    echo "[hotline](+)"
    echo "secret = $secret"
} >"$etc/hotline-manager-local.conf"
{
    echo "; Written by compose-entrypoint.sh at container start. Do not edit."
    echo "[general](+)"
    echo "bindaddr = $address"
} >"$etc/hotline-http-local.conf"
# Asterisk drops root (-U asterisk) before it reads its config.
chown asterisk: "$etc/hotline-manager-local.conf" "$etc/hotline-http-local.conf" 2>/dev/null || true

# Names go into config lines: letters, digits, "-", "_" and "." only.
check_name() {
    case $2 in
        '' | *[!A-Za-z0-9._-]*) die "$1 must use only A-Z a-z 0-9 . _ - (got '$2')" ;;
    esac
}

if [ -n "${ASTERISK_SYSTEMNAME:-}" ]; then
    check_name ASTERISK_SYSTEMNAME "$ASTERISK_SYSTEMNAME"
    [ -f "$etc/asterisk.conf" ] || die "$etc/asterisk.conf is missing: this image has no stock asterisk.conf"
    grep -q '^\[options\]' "$etc/asterisk.conf" || die "$etc/asterisk.conf has no [options] section"
    line='#tryinclude hotline-asterisk-local.conf'
    grep -qxF "$line" "$etc/asterisk.conf" || printf '\n%s\n' "$line" >>"$etc/asterisk.conf"
    {
        echo "; Written by compose-entrypoint.sh at container start. Do not edit."
        echo "[options](+)"
        echo "systemname = $ASTERISK_SYSTEMNAME"
    } >"$etc/hotline-asterisk-local.conf"
    chown asterisk: "$etc/hotline-asterisk-local.conf" 2>/dev/null || true
fi

if [ -n "${HOTLINE_BACKEND:-}" ]; then
    check_name HOTLINE_BACKEND "$HOTLINE_BACKEND"
    mark='; set by compose-entrypoint.sh'
    sed -i "/$mark\$/d" "$etc/extensions.conf"  # a restarted container: replaced, not repeated
    sed -i "\|^$globals_line\$|a HOTLINE_BACKEND=$HOTLINE_BACKEND $mark" "$etc/extensions.conf"
fi

exec "$@"
