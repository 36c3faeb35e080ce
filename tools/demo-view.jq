# tools/demo's live view: one short line per event a person cares about — a
# meter announced, its Home Assistant device, configured (its commands
# acknowledged), a reading per meter every $every seconds (its latest values,
# not every message), the relay switched, a command that failed.
#
#   jq -nrR --unbuffered --argjson every 10 --argjson shards 1 -f tools/demo-view.jq
#
# Input, one line each, the first word naming the source:
#   central TOPIC PAYLOAD   what `mosquitto_sub -v` wrote of kpm33b/# on the
#                           central broker (the demo leaves the status documents out)
#   homeassistant {"id","name","entities","units"}   a Home Assistant device
#                           config, condensed (see tools/demo)
#   shardK LOGLINE          config sender K's log (logfmt, with or without a
#                           syslog priority prefix such as <6>)
def clip($n): if length > $n then .[0:$n - 1] + "…" else . end;
def pad($n): if length >= $n then . else . + (" " * ($n - length)) end;
def stamp: now | strflocaltime("%H:%M:%S");
def who($s; $id): ($s.names[$id] // $id) | pad(20);
def say($s; $id; $text): "  \(stamp)  \(who($s; $id))  \($text)";
# logfmt: key=value or key="quoted value"
def logfmt: [match("([A-Za-z_]+)=(\"(?:[^\"\\\\]|\\\\.)*\"|\\S*)"; "g")
             | {(.captures[0].string): (.captures[1].string | if startswith("\"") then (fromjson? // .) else . end)}] | add // {};
# A clean payload's fields as the meter wrote them (no re-printed numbers).
def fields: [match("\"([A-Za-z0-9_]+)\":(\"[^\"]*\"|[^,}]+)"; "g")
             | [.captures[0].string, (.captures[1].string | ltrimstr("\"") | rtrimstr("\""))]];
def reading($s; $id):
  ($s.vals[$id] // {}) as $v
  | (["active_power", "active_energy"] | map(select($v[.] != null))) as $first
  | ($first + ($v | keys_unsorted | map(select(. as $k | $first | index($k) | not)))) as $order
  | [$order[] | "\(.) \($v[.])" + (($s.units[$id][.] // "") | if . == "" then "" else " " + . end)]
  | join(", ") | clip(96);
def days($o): (if $o < 0 then -$o else $o end) as $a | if $a >= 86400 then "\($a / 86400 | floor) days" else "\($a) s" end;

foreach (inputs | select(. != "")) as $l (
  {names: {}, units: {}, vals: {}, last: {}, acks: {}, configured: {}, clock: {}, relay: {},
   announced: {}, out: []};
  .out = []
  | ($l | index(" ") // ($l | length)) as $sp
  | $l[0:$sp] as $source | $l[$sp + 1:] as $rest
  | if $source == "central" then
      ($rest | index(" ")) as $sp
      | (if $sp == null then [$rest, ""] else [$rest[0:$sp], $rest[$sp + 1:]] end) as [$topic, $payload]
      | if ($topic | startswith("kpm33b/discovery/")) then
          ($topic | ltrimstr("kpm33b/discovery/")) as $id
          | if $payload == "" then .out += [say(.; $id; "withdrawn (no discovery message, no Home Assistant device)")] | .announced[$id] = null
            else ($payload | fromjson) as $d
            | .names[$id] = ([$id, $d.context // empty] | join(" "))
            | ($d.clock_offset_s // 0) as $off
            | if .announced[$id] == null then
                .announced[$id] = true | .clock[$id] = $off
                | ($d.topics // {}) as $t
                | (($t | to_entries | map(.value)) as $v
                   | if ($v | length) == 0 then ""
                     else " → " + ($v[0] | sub("/[^/]*$"; "")) + "/{" + ($t | keys_unsorted | join(",")) + "}" end) as $where
                | .out += [say(.; $id; "announced: \($d.model // "meter")\($where)"
                               + (if $off != 0 then "; its clock is \(days($off)) off" else "" end)
                               + (if $d.instance then " (instance \($d.instance))" else "" end))]
              elif .clock[$id] != $off then
                .clock[$id] = $off
                | .out += [say(.; $id; if $off == 0 then "clock right again (re-announced)" else "clock \(days($off)) off (re-announced)" end)]
              else . end
            end
        elif ($topic | test("/(seconds|minutes|daily|io)$")) and ($payload | startswith("{")) then
          ($payload | capture("\"id\":\"(?<id>[^\"]+)\"").id) as $id
          | .vals[$id] = ((.vals[$id] // {}) + ([$payload | fields[] | select(.[0] != "id" and .[0] != "time") | {(.[0]): .[1]}] | add // {}))
          # Once the meter is announced, its latest values every $every seconds.
          | if .announced[$id] and (now - (.last[$id] // 0)) >= $every then
              .last[$id] = now | .out += [say(.; $id; reading(.; $id))]
            else . end
        elif ($topic | test("/relay$")) then
          ($topic | split("/") | .[-2]) as $id
          | if .relay[$id] != $payload then .relay[$id] = $payload | .out += [say(.; $id; "relay switched \($payload), confirmed by the meter")] else . end
        else . end
    elif $source == "homeassistant" then
      ($rest | fromjson? // null) as $c
      | if $c == null then . else
          .units[$c.id] = $c.units
          | .out += [say(.; $c.id; "Home Assistant device \"\($c.name)\" with \($c.entities) entities")]
        end
    elif ($source | startswith("shard")) then
      ($rest | sub("^<[0-7]>"; "") | logfmt) as $e
      | $source as $shard
      | ($e.meter // "") as $id
      | if $e.msg == "command_acknowledged" then
          ($e.command | ltrimstr("set_")) as $what
          # A short value (an interval) is shown, a long one (a clock) is not.
          | (($e.value // "") | if length > 10 then "" else " " + . end) as $value
          | if .configured[$id] then .out += [say(.; $id; "\($e.command)\($value) acknowledged")]
            else .acks[$id] = ((.acks[$id] // []) + ["\($what)\(if $value == "" then " set" else $value end)"]) end
        elif $e.msg == "meter_configured" then
          # A meter with no command of its own (a KPM312 loop) is not shown.
          .configured[$id] = true
          | (.acks[$id] // []) as $a
          | if ($a | length) == 0 then . else
              .out += [say(.; $id; "configured" + (if $shards > 1 then " by \($shard)" else "" end)
                                + " (\($a | length) \(if ($a | length) == 1 then "command" else "commands" end) acknowledged): "
                                + ($a | join(", ")) | clip(104))]
            end
          | .acks[$id] = []
        elif ($e.msg | IN("command_failed", "command_refused", "reply_timeout", "ALERT", "request_rejected", "request_failed", "request_timeout")) then
          .out += [say(.; $id; "⚠ \(if $e.msg == "ALERT" then "ALERT \($e.event // "")" else $e.msg end) \($e.command // "")"
                              + ([$e.message, $e.reason, $e.error, $e.detail] | map(select(. != null)) | if length > 0 then ": " + first else "" end)
                              | clip(100))]
        else . end
    else . end;
  .out[]
)
