#!/usr/bin/env bash
# demo/run.sh, run by `make demo`: serves the static site in demo/site/ with a
# login in front of it on http://localhost:8080, until Ctrl-C.
#
#   1. Uses the PostgreSQL database in DATABASE_URL if it is set; otherwise
#      starts a throwaway PostgreSQL in a temporary folder (installing the
#      server with apt-get first if it is missing and this runs as root on
#      Debian or Ubuntu).
#   2. Builds ./caddy with the plugin (go build -o caddy ./cmd/caddy).
#   3. Makes a key for two-step sign-in (PGSESSION_SECRETS_KEY, the
#      Caddyfile's secrets_key) unless one is set.
#   4. Creates the user "demo" with a random password, or gives it a new one.
#   5. Runs Caddy with demo/Caddyfile and prints the address, name and password.
#
# On Ctrl-C, or any other exit, it stops Caddy and the throwaway PostgreSQL
# and removes the temporary folder.
#
# Environment: DATABASE_URL (optional, see above), PGSESSION_SECRETS_KEY
# (optional: a new key each run otherwise), DEMO_PORT (default 8080).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

DEMO_PORT=${DEMO_PORT:-8080}
demo_user=demo

# ---- output ----------------------------------------------------------------

if [[ -t 1 ]]; then
	bold=$'\e[1m' dim=$'\e[2m' green=$'\e[32m' blue=$'\e[34m' red=$'\e[31m' reset=$'\e[0m'
else
	bold='' dim='' green='' blue='' red='' reset=''
fi
step() { printf '%s==>%s %s\n' "$blue$bold" "$reset" "$*"; }
info() { printf '    %s%s%s\n' "$dim" "$*" "$reset"; }
die() {
	printf '%serror:%s %s\n' "$red$bold" "$reset" "$1" >&2
	shift
	for line in "$@"; do printf '       %s\n' "$line" >&2; done
	exit 1
}
# indent shows a command's output under the step that ran it.
indent() { sed 's/^/    /'; }

# ---- cleanup: runs on every exit -------------------------------------------

tmp='' pg_bin='' pg_data='' caddy_pid=''
as_postgres=() # how to run PostgreSQL's programs: as root, as the postgres user

# pg runs one of PostgreSQL's programs from the temporary folder, as the
# postgres user when this script runs as root (PostgreSQL refuses root).
pg() { (cd "$tmp" && ${as_postgres[@]+"${as_postgres[@]}"} "$@"); }

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	local status=$?
	trap - EXIT INT TERM HUP
	trap '' INT # a second Ctrl-C must not cut the cleanup short
	echo
	if [[ -n $caddy_pid ]] && kill -0 "$caddy_pid" 2>/dev/null; then
		step "Stopping Caddy"
		kill -TERM "$caddy_pid" 2>/dev/null || true
		wait "$caddy_pid" 2>/dev/null || true
	fi
	if [[ -n $pg_data && -f $pg_data/postmaster.pid ]]; then
		step "Stopping the throwaway PostgreSQL"
		pg "$pg_bin/pg_ctl" stop -D "$pg_data" -m fast -w -t 60 >/dev/null 2>&1 ||
			pg "$pg_bin/pg_ctl" stop -D "$pg_data" -m immediate -w -t 30 >/dev/null 2>&1 || true
	fi
	if [[ -n $tmp ]]; then
		rm -rf "$tmp"
		step "Removed $tmp"
	fi
	[[ -z $running ]] || step "Demo stopped."
	exit "$status"
}
running='' # set once the demo is up: Ctrl-C is then the normal way to end it
trap cleanup EXIT
trap 'if [[ -n $running ]]; then exit 0; else exit 130; fi' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# ---- checks ------------------------------------------------------------------

# port_in_use tells whether something on this machine accepts connections on a port.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

command -v go >/dev/null ||
	die "Go is not installed, and it is needed to build Caddy with the plugin." "Get it from https://go.dev/dl/"
if port_in_use "$DEMO_PORT"; then
	die "Port $DEMO_PORT is already in use." "Stop what uses it, or pick another port: DEMO_PORT=8081 make demo"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pgsession-demo.XXXXXX")

# ---- PostgreSQL --------------------------------------------------------------

# find_pg_bin sets pg_bin to the folder holding initdb and pg_ctl: from PATH,
# or the newest /usr/lib/postgresql/*/bin, where Debian and Ubuntu put them.
find_pg_bin() {
	local initdb dir
	if initdb=$(command -v initdb) && command -v pg_ctl >/dev/null; then
		pg_bin=$(dirname "$initdb")
		return 0
	fi
	# Without a match the pattern stays as it is, and the test below skips it.
	for dir in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V -r); do
		if [[ -x $dir/initdb && -x $dir/pg_ctl ]]; then
			pg_bin=$dir
			return 0
		fi
	done
	return 1
}

# random_password prints 20 random letters and digits.
random_password() { head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | cut -c 1-20; }

start_postgres() {
	if ! find_pg_bin; then
		if [[ $(id -u) == 0 && -f /etc/debian_version ]] && command -v apt-get >/dev/null; then
			step "Installing PostgreSQL: apt-get update && apt-get install -y postgresql"
			apt-get update -qq 2>&1 | indent
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >"$tmp/apt.log" 2>&1 ||
				{ indent <"$tmp/apt.log" >&2; die "apt-get install postgresql failed."; }
			find_pg_bin || die "PostgreSQL was installed, but initdb and pg_ctl are still not found."
		else
			local how="sudo apt-get update && sudo apt-get install -y postgresql"
			[[ $(uname -s) == Darwin ]] && how="brew install postgresql@17 && brew link postgresql@17"
			[[ -f /etc/debian_version || $(uname -s) == Darwin ]] ||
				how="install PostgreSQL's server package (it has initdb and pg_ctl)"
			die "PostgreSQL's server programs (initdb, pg_ctl) are not installed. Install them with:" \
				"  $how" \
				"or point DATABASE_URL at a PostgreSQL database of your own."
		fi
	fi

	if [[ $(id -u) == 0 ]]; then
		id postgres >/dev/null 2>&1 ||
			die "Running as root, so PostgreSQL must run as the postgres user, and there is none." \
				"Create it (useradd --system postgres), run as another user, or set DATABASE_URL."
		as_postgres=(runuser -u postgres --)
		chown postgres: "$tmp"
	fi
	chmod 700 "$tmp"

	# A free port, starting from 54329, away from the usual 5432.
	local port=54329
	while port_in_use "$port"; do
		((port++ < 54429)) || die "No free port found for PostgreSQL between 54329 and 54429."
	done

	step "Starting a throwaway PostgreSQL $("$pg_bin/pg_ctl" --version | sed -E 's/^[^0-9]*([0-9.]+).*/\1/') on 127.0.0.1:$port"
	info "in $tmp"
	pg_data=$tmp/data
	local pg_password
	pg_password=$(random_password)
	printf '%s\n' "$pg_password" >"$tmp/pwfile"
	[[ ${#as_postgres[@]} == 0 ]] || chown postgres: "$tmp/pwfile"
	pg "$pg_bin/initdb" -D "$pg_data" -U postgres --pwfile="$tmp/pwfile" \
		--auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-locale --no-sync \
		>"$tmp/initdb.log" 2>&1 ||
		{ indent <"$tmp/initdb.log" >&2; die "initdb failed (output above)."; }
	rm -f "$tmp/pwfile"
	# Only reachable from this machine, with its socket in the temporary folder,
	# so it never meets an installed PostgreSQL; durability is not needed.
	cat >>"$pg_data/postgresql.conf" <<-EOF

		# Added by demo/run.sh
		port = $port
		listen_addresses = '127.0.0.1'
		unix_socket_directories = '$tmp'
		fsync = off
		synchronous_commit = off
		full_page_writes = off
	EOF
	pg "$pg_bin/pg_ctl" start -D "$pg_data" -l "$tmp/postgres.log" -w -t 60 >/dev/null 2>&1 ||
		{ tail -n 20 "$tmp/postgres.log" | indent >&2; die "PostgreSQL did not start (its log is above)."; }

	DATABASE_URL="postgres://postgres:$pg_password@127.0.0.1:$port/postgres?sslmode=disable"
	throwaway_db=1
}

throwaway_db=''
if [[ -n ${DATABASE_URL:-} ]]; then
	step "Using the PostgreSQL database in DATABASE_URL"
	info "the user \"$demo_user\" is created there, or gets a new password"
else
	start_postgres
fi
export DATABASE_URL

# ---- Caddy -----------------------------------------------------------------

# build_progress turns go build -v's list of packages compiled into a count,
# kept on one line on a terminal and printed every 100 packages otherwise;
# other lines (module downloads, compile errors) pass through. A build that
# compiled fewer than "few" packages (a warm cache: the plugin's own, the
# binary) shows no count, which would read as a build cut short, but says
# it was up to date, unless it printed anything else (an error).
build_progress() {
	local total tty=''
	total=$(go list -deps ./cmd/caddy 2>/dev/null | wc -l) || total=0
	[[ -t 1 ]] && tty=1
	awk -v total="$total" -v tty="$tty" -v few=50 '
		function show() { printf (tty ? "\r" : "") "    compiled %d of at most %d packages" (tty ? "" : "\n"), n, total; fflush() }
		/^[^ :#]+$/ { n++; if (n >= few && (tty || n % 100 == 0)) show(); next }
		{ if (tty && n >= few) printf "\n"; print "    " $0; fflush(); other = 1 }
		END {
			if (n < few) { if (!other) print "    up to date" }
			else if (tty) printf "\n"
			else if (n % 100 != 0) show()
		}'
}

step "Building Caddy with the plugin: go build -o caddy ./cmd/caddy"
info "the first build compiles Caddy and its dependencies and takes a few minutes; later ones take seconds"
go build -v -o caddy ./cmd/caddy 2>&1 | build_progress || die "go build failed (output above)."

step "Installing the schema: ./caddy pg-session migrate"
./caddy pg-session migrate 2>&1 | indent || die "Installing the schema failed (output above)."

made_key=''
if [[ -n ${PGSESSION_SECRETS_KEY:-} ]]; then
	step "Using the key for two-step sign-in in PGSESSION_SECRETS_KEY"
else
	step "Making a key for two-step sign-in: ./caddy pg-session secrets-key"
	PGSESSION_SECRETS_KEY=$(./caddy pg-session secrets-key) || die "Making the key failed (output above)."
	made_key=1
	info "demo/Caddyfile reads it as secrets_key: the account page offers an authenticator app (TOTP) and recovery codes"
	if [[ -n $throwaway_db ]]; then
		info "it lives as long as this demo, as the database does"
	else
		info "a new one each run: export PGSESSION_SECRETS_KEY to keep one, and the authenticator set up with it"
	fi
fi
export PGSESSION_SECRETS_KEY

password=$(random_password)
step "Creating the user \"$demo_user\": ./caddy pg-session user add $demo_user --password-stdin"
if out=$(printf '%s\n' "$password" | ./caddy pg-session user add "$demo_user" --password-stdin 2>&1); then
	indent <<<"$out"
elif passwd_out=$(printf '%s\n' "$password" | ./caddy pg-session user passwd "$demo_user" --password-stdin 2>&1); then
	# "user add" failed because the user exists already, from an earlier run.
	info "it exists already, so it gets a new password: ./caddy pg-session user passwd $demo_user --password-stdin"
	indent <<<"$passwd_out"
	if [[ -n $made_key ]]; then
		# An authenticator set up in an earlier run was sealed with another
		# key: without this, the new password would not be enough to sign in.
		info "and its two-step sign-in from an earlier run is removed: ./caddy pg-session user reset-2fa $demo_user"
		./caddy pg-session user reset-2fa "$demo_user" 2>&1 | indent || die "Removing its two-step sign-in failed (output above)."
	fi
else
	indent <<<"$out" >&2
	die "Creating the user failed (output above)."
fi

step "Starting Caddy with demo/Caddyfile"
info "its log: $tmp/caddy.log"
# Caddy's own state (autosave, instance id) goes to the temporary folder too.
DEMO_SITE_ROOT=$PWD/demo/site DEMO_PORT=$DEMO_PORT \
	XDG_CONFIG_HOME=$tmp/caddy-config XDG_DATA_HOME=$tmp/caddy-data \
	./caddy run --config demo/Caddyfile --adapter caddyfile >"$tmp/caddy.log" 2>&1 &
caddy_pid=$!

for ((i = 0; i < 300; i++)); do
	kill -0 "$caddy_pid" 2>/dev/null ||
		{ tail -n 20 "$tmp/caddy.log" | indent >&2; die "Caddy stopped (the end of its log is above)."; }
	port_in_use "$DEMO_PORT" && break
	sleep 0.1
done
port_in_use "$DEMO_PORT" || die "Caddy did not start listening on port $DEMO_PORT within 30 seconds."

# ---- the box ---------------------------------------------------------------

url="http://localhost:$DEMO_PORT"
if [[ ${LC_ALL:-${LC_CTYPE:-${LANG:-}}} =~ [Uu][Tt][Ff]-?8 ]]; then
	h='─' v='│' tl='┌' tr='┐' bl='└' br='┘'
else
	h='-' v='|' tl='+' tr='+' bl='+' br='+'
fi
width=50
rule=$(printf "%${width}s" '' | sed "s/ /$h/g")
row() { printf "  %s  %-12s%s%-$((width - 16))s%s  %s\n" "$v" "$1" "$bold" "$2" "$reset" "$v"; }
blank() { printf "  %s%${width}s%s\n" "$v" '' "$v"; }

echo
printf '  %s%s%s\n' "$tl" "$rule" "$tr"
printf "  %s  %s%-$((width - 4))s%s  %s\n" "$v" "$green$bold" "The demo is running. Sign in at:" "$reset" "$v"
blank
row "URL" "$url"
row "Username" "$demo_user"
row "Password" "$password"
printf '  %s%s%s\n' "$bl" "$rule" "$br"
echo
info "Two-step sign-in: your account ($url/account) sets up an authenticator app, recovery codes and passkeys."
echo
if [[ -n $throwaway_db ]]; then
	info "To try the pg-session CLI in another terminal (e.g. sessions list $demo_user):"
	info "  export DATABASE_URL='$DATABASE_URL'"
	echo
	printf '  %sCtrl-C to stop%s: Caddy and the throwaway PostgreSQL stop, and its data is deleted.\n' "$bold" "$reset"
else
	printf '  %sCtrl-C to stop.%s The user "%s" stays in your database;\n' "$bold" "$reset" "$demo_user"
	printf '  ./caddy pg-session user delete %s removes it.\n' "$demo_user"
fi

# Until Ctrl-C, or until Caddy stops by itself.
running=1
status=0
wait "$caddy_pid" || status=$?
caddy_pid=''
# Caddy exits with 0 only when told to stop: by Ctrl-C, which reaches it as
# well as this script (that may not see it at all: a shell started without a
# terminal ignores SIGINT, while Caddy listens for it), or by its admin API.
((status != 0)) || exit 0
running=''
tail -n 20 "$tmp/caddy.log" | indent >&2
die "Caddy stopped by itself (exit status $status; the end of its log is above)."
