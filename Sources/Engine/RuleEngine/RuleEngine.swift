// RuleEngine: the rule pack and the rules' half of the site config, from
// YAML to a running program. One path for everyone — rulecheck, the golden
// tests, both services:
//
//   Model/, Load/  the pack and site config as written (`RulePack`,
//              `SiteConfig`), every value with its file:line:column
//   Compile/   `Compiler`: checks everything, collects all diagnostics, and
//              builds the immutable `Program`
//   Runtime/   `Engine.process`: topic match → one-pass field extraction →
//              reassembly, id and time checks, junk filters, counter guard →
//              clean messages; discovery and Home Assistant configs
//   Diagnostics/, HomeAssistant/ (the sensor semantics lint checks against),
//   Support/ (the few file operations, on the C library; FNV-1a-64)
//
// No sockets, clocks, threads or randomness: time comes in as a parameter.
// What may stand in a topic is the Topics target's, shared with MQTT.
// Replaying captures and golden cases lives beside it, in RuleTesting.
