# Sourced by tools/bench, tools/check-broker and tools/demo (run from the
# repository root): Mosquitto on a free loopback port, and the production
# brokers' configs moved to a scratch directory.

# has_line FILE REGEX [FIRST_LINE]: a line of FILE from FIRST_LINE on (1)
# matches REGEX. (awk reads the whole file: no "producer | grep -q", whose early
# exit can kill the producer with SIGPIPE under pipefail.)
has_line() { awk -v re="$2" -v from="${3:-1}" 'NR >= from && $0 ~ re { found = 1; exit } END { exit !found }' "$1"; }

# launch_mosquitto CONF LOG [OUT]: starts `mosquitto -c CONF` with its output
# appended to OUT (default: LOG) and waits up to $launch_wait_s seconds (default
# 10) until LOG says it runs
# (a line written after the start). Sets $pid (the caller stops it by PID).
# Status: 0 running; 2 its port was taken; 1 it did not start (see LOG, OUT).
launch_mosquitto() {
  local conf=$1 log=$2 out=${3:-$2} from out_from i
  touch "$log" "$out"
  from=$(($(wc -l < "$log") + 1))
  out_from=$(($(wc -l < "$out") + 1))
  mosquitto -c "$conf" >> "$out" 2>&1 &
  pid=$!
  # launch_wait_s (default 10): a broker reading a large ACL takes longer.
  for ((i = 0; i < ${launch_wait_s:-10} * 20; i++)); do
    has_line "$log" "mosquitto version .* running" "$from" && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; pid=""
  if has_line "$log" "Address already in use" "$from" || has_line "$out" "Address already in use" "$out_from"; then return 2; fi
  return 1
}

# start_mosquitto_on_free_port WRITE_CONF CONF LOG [OUT]: up to 10 times, picks
# a random loopback port, runs `WRITE_CONF PORT` (which writes CONF for that
# port) and `launch_mosquitto CONF LOG OUT`; another port is tried only when
# this one was taken. Sets $port and $pid. Status: 0 running; 1 it did not
# start (see LOG, OUT); 3 WRITE_CONF failed.
start_mosquitto_on_free_port() {
  local write_conf=$1 conf=$2 log=$3 out=${4:-$3} attempt rc=1
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    port=$((20000 + RANDOM % 40000))
    "$write_conf" "$port" || return 3
    rc=0
    launch_mosquitto "$conf" "$log" "$out" || rc=$?
    [ "$rc" -eq 2 ] || break
  done
  [ "$rc" -eq 0 ] && return 0
  return 1
}

# internal_broker_conf PORT DIR CONF: broker/internal/mosquitto.conf changed only
# where it must be: listening on 127.0.0.1:PORT alone, run as the current user,
# DIR/passwd, DIR/acl and DIR/data/ for its files, the meter ACL plugin as
# tools/build-meter-acl builds it (built here if needed). Fails unless every
# rewrite hit (the production config changed under the tools) and no other
# listener is open.
internal_broker_conf() {
  local port=$1 dir=$2 conf=$3 user plugin
  user=$(id -un)
  plugin=$(tools/build-meter-acl) || return 1
  sed -e "s|^listener 11883\$|listener $port 127.0.0.1|" \
      -e "s|^user kpm33b-broker\$|user $user|" \
      -e "s|^password_file /etc/kpm33b/broker/passwd\$|password_file $dir/passwd|" \
      -e "s|^acl_file /etc/kpm33b/broker/acl\$|acl_file $dir/acl|" \
      -e "s|^plugin /usr/lib/kpm33b-proxy/kpm33b-meter-acl.so\$|plugin $plugin|" \
      -e "s|^plugin_opt_password_file /etc/kpm33b/broker/passwd\$|plugin_opt_password_file $dir/passwd|" \
      -e "s|^persistence_location /var/lib/kpm33b-broker/\$|persistence_location $dir/data/|" \
      broker/internal/mosquitto.conf > "$conf"
  mkdir -p "$dir/data"
  [ "$(grep -c '^listener ' "$conf")" = 1 ] && grep -qx "listener $port 127.0.0.1" "$conf" &&
    grep -qx "password_file $dir/passwd" "$conf" && grep -qx "acl_file $dir/acl" "$conf" &&
    grep -qx "plugin $plugin" "$conf" && grep -qx "plugin_opt_password_file $dir/passwd" "$conf" &&
    grep -qx "persistence_location $dir/data/" "$conf" && grep -qx "user $user" "$conf"
}

# meter_accounts N DIR [ACCOUNTS_SCRIPT]: the meters' broker's accounts for N
# meters as a site has them, in DIR/passwd, DIR/credentials/ and DIR/acl (a
# copy of broker/internal/acl with its generated block): kpm33b-proxy,
# kpm33b-config and meter-sim's meters 33B1225950027, 33B1225950028, ... (the
# ids of its --meters N). ACCOUNTS_SCRIPT (default tools/broker-accounts) makes
# the services' accounts and the first meter's; the meters past the first get
# the first one's hash (the same password), so N accounts cost no N runs of
# mosquitto_passwd; then the script rewrites the ACL's block from the password
# file, as after any change. The meters' password: DIR/credentials/25950027.
meter_accounts() {
  local n=$1 dir=$2 script=${3:-tools/broker-accounts} hash
  mkdir -p "$dir"
  cp broker/internal/acl "$dir/acl"
  bash "$script" --password-file "$dir/passwd" --credentials-dir "$dir/credentials" \
    --acl-file "$dir/acl" 33B1225950027 > "$dir/accounts.log" || return 1
  if [ "$n" -gt 1 ]; then
    hash=$(awk -F: '$1 == "25950027" { print substr($0, 10) }' "$dir/passwd")
    [ -n "$hash" ] || return 1
    awk -v n="$n" -v h="$hash" 'BEGIN { for (i = 1; i < n; i++) printf "%08d:%s\n", 25950027 + i, h }' >> "$dir/passwd"
  fi
  bash "$script" --password-file "$dir/passwd" --credentials-dir "$dir/credentials" \
    --acl-file "$dir/acl" >> "$dir/accounts.log"
}

# central_broker_conf PORT DIR CONF: broker/central/mosquitto-production.conf
# changed only where it must be: listening on 127.0.0.1:PORT alone, run as the
# current user, DIR/passwd, DIR/acl and DIR/data/ for its files. Fails unless
# every rewrite hit and no other listener is open.
central_broker_conf() {
  local port=$1 dir=$2 conf=$3 user
  user=$(id -un)
  sed -e "s|^listener 1883\$|listener $port 127.0.0.1|" \
      -e "s|^password_file /etc/kpm33b/central/passwd\$|password_file $dir/passwd|" \
      -e "s|^acl_file /etc/kpm33b/central/acl\$|acl_file $dir/acl|" \
      -e "s|^persistence_location /var/lib/kpm33b-central/\$|persistence_location $dir/data/|" \
      broker/central/mosquitto-production.conf > "$conf"
  # Started as root, mosquitto would switch to 'mosquitto', which cannot read DIR.
  echo "user $user" >> "$conf"
  mkdir -p "$dir/data"
  [ "$(grep -c '^listener ' "$conf")" = 1 ] && grep -qx "listener $port 127.0.0.1" "$conf" &&
    grep -qx "password_file $dir/passwd" "$conf" && grep -qx "acl_file $dir/acl" "$conf" &&
    grep -qx "persistence_location $dir/data/" "$conf" && grep -qx "allow_anonymous false" "$conf"
}

# release_build PRODUCT...: the release build of each product, with the Swift
# runtime, Foundation and Dispatch linked statically and no $ORIGIN run path
# (the binaries the Debian package ships need no toolchain library). tools/demo, tools/bench and
# tools/package build with these very flags so they share one build: another
# flag set would recompile every module. One product per run (a static build
# of every target would take in the tests' support, which needs the toolchain's
# dynamic Testing). Sets $bin.
release_build() {
  local product
  for product in "$@"; do
    swift build -c release --static-swift-stdlib --disable-local-rpath --product "$product" || return 1
  done
  bin=$(swift build -c release --static-swift-stdlib --disable-local-rpath --show-bin-path)
}
