/*
 * kpm33b-meter-acl: the meters' rights on the KPM33B internal broker, as a
 * Mosquitto plugin (plugin interface version 5, Mosquitto 2.0).
 *
 * The meter accounts are the usernames of the broker's password file that
 * are 8 characters of 0-9 A-Z (the last 8 characters of a meter id); the
 * plugin keeps them in a hash table and decides each check in constant time:
 *
 *   - a meter account may publish its data and reply topics (meter_writes
 *     below) and receive its own command topics, <command><its username> for
 *     the five commands (commands below); nothing else: any other publish or
 *     delivery of a meter account is denied here;
 *   - the config-sender's account (plugin_opt_config_account) may publish
 *     <command><x> for the five commands and x a meter account;
 *   - everything else is deferred (MOSQ_ERR_PLUGIN_DEFER): the services'
 *     rights stay in the broker's short, hand-written acl_file.
 *
 * Those are the rights the generated acl_file gave, one "user" block per
 * meter and five lines per meter under the config-sender's account; Mosquitto
 * reads such a file in time quadratic in its accounts and walks the
 * config-sender's lines on each of its commands. Neither an acl_file nor the
 * dynamic-security plugin can say "<command><x> where x is a meter account":
 * a wildcard or %u cannot stand for part of a topic level.
 *
 * How Mosquitto 2.0.11 combines this plugin with password_file and acl_file
 * (src/security.c, src/security_default.c, src/plugin.c of its source):
 *   1. mosquitto_acl_check() first denies a client without an id and applies
 *      its fixed rules for '$' topics ($SYS is never writable);
 *   2. then it calls the ACL_CHECK callbacks in the order they were
 *      registered, and the first answer that is not MOSQ_ERR_PLUGIN_DEFER is
 *      final. Plugins are initialised (mosquitto_plugin_init, which registers
 *      this callback) before mosquitto_security_init_default() registers the
 *      acl_file's callback, and a reload (SIGHUP) unregisters and registers
 *      again only the acl_file's: this plugin always asks first;
 *   3. if every callback deferred, the check is denied. The acl_file's
 *      callback denies an account without a "user" block (every meter now),
 *      and in 2.0.11 it allows every SUBSCRIBE and UNSUBSCRIBE (what a client
 *      receives is checked at delivery, MOSQ_ACL_READ): this plugin defers
 *      subscriptions, so a meter's firmware subscribing to its command topics
 *      (and to MQTT_SET_<x>, which nobody may write) is acknowledged as
 *      before, and receives only what the READ check below allows.
 * Logging in is not this plugin's: it registers no BASIC_AUTH callback, so
 * password_file decides, as before.
 *
 * Reload: on SIGHUP Mosquitto calls the RELOAD callbacks before it re-reads
 * password_file and acl_file; this plugin re-reads the password file into a
 * new table (linear in its lines) and swaps it in. If the file cannot be
 * read then, the set is emptied (no meter has a right until a reload reads
 * it): the broker too refuses every login when it cannot read its password
 * file. The callback returns MOSQ_ERR_PLUGIN_DEFER so that the other
 * plugins' reloads run too (any other answer would end the reload there).
 *
 * Options (mosquitto.conf, after the "plugin" line):
 *   plugin_opt_password_file FILE     the broker's password_file
 *   plugin_opt_config_account NAME    the config-sender's username (kpm33b-config)
 * A missing option, an unknown one or a password file that cannot be read:
 * the plugin refuses to start, and so does the broker. A line of the
 * password file without ':' is logged and skipped.
 *
 * Mosquitto 2.0 runs its callbacks on one thread (the broker's main loop).
 *
 * Built by tools/build-meter-acl (cc; Debian's mosquitto-dev has the
 * headers); the broker provides the mosquitto_* symbols when it loads it.
 */
#define _POSIX_C_SOURCE 200809L   /* getline */

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

/* The topic families of the meters' protocol. A meter writes its data and
 * replies; the config-sender writes the five documented commands, each
 * followed by the meter's username, which only that meter receives. */
static const char *const meter_writes[] = {
	"MQTT_RT_DATA", "MQTT_ENY_NOW", "MQTT_DAY_DATA", "MQTT_TELEIND",
	"MQTT_COMMOD_SET_REP", "MQTT_COMMOD_READ_REP", "MQTT_METER_TIME_REP",
	"MQTT_TELECTRL_REP", "MQTT_RECONFIG_REPLY",
};
static const char *const commands[] = {
	"MQTT_COMMOD_SET_", "MQTT_SETTIME_", "MQTT_TELECTRL_", "MQTT_COMMOD_READ_", "MQTT_RECONFIG_",
};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define USERNAME_LENGTH 8
/* At most this many meter accounts (a table of 2^21 slots, 16 MiB): a
 * password file with more is refused rather than grown without bound. */
#define MAX_METERS (1u << 20)

/* A set of meter usernames: 8 characters packed into a uint64_t (never 0:
 * every character is 0-9 A-Z), open addressing with linear probing, at most
 * half full. */
struct meter_set {
	uint64_t *slots;
	size_t mask;   /* slots - 1; the slot count is a power of two */
	size_t count;
};

struct plugin {
	mosquitto_plugin_id_t *identifier;
	char *password_file;
	char *config_account;
	struct meter_set meters;
};

static bool is_meter_username(const char *s, size_t length)
{
	if(length != USERNAME_LENGTH) return false;
	for(size_t i = 0; i < length; i++){
		if(!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'Z'))) return false;
	}
	return true;
}

static uint64_t pack(const char *s)
{
	uint64_t key;
	memcpy(&key, s, sizeof(key));
	return key;
}

static size_t slot_of(const struct meter_set *set, uint64_t key)
{
	return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & set->mask;
}

/* Adds key; false if it was there already. The table has room (built for it). */
static bool set_insert(struct meter_set *set, uint64_t key)
{
	size_t i = slot_of(set, key);
	while(set->slots[i]){
		if(set->slots[i] == key) return false;
		i = (i + 1) & set->mask;
	}
	set->slots[i] = key;
	set->count++;
	return true;
}

static bool set_contains(const struct meter_set *set, const char *s, size_t length)
{
	if(!set->slots || !is_meter_username(s, length)) return false;
	uint64_t key = pack(s);
	size_t i = slot_of(set, key);
	while(set->slots[i]){
		if(set->slots[i] == key) return true;
		i = (i + 1) & set->mask;
	}
	return false;
}

/* Reads the meter usernames of a mosquitto password file into *out (a new
 * table). Lines starting with '#' and empty lines are skipped, as Mosquitto
 * skips them; a line without ':' is logged and skipped; usernames are
 * trimmed of blanks, as Mosquitto trims them. MOSQ_ERR_SUCCESS, or an error
 * (logged) with *out untouched. */
static int read_meters(const char *path, struct meter_set *out)
{
	FILE *file = fopen(path, "r");
	if(!file){
		mosquitto_log_printf(MOSQ_LOG_ERR, "kpm33b-meter-acl: cannot read the password file %s: %s",
				path, strerror(errno));
		return MOSQ_ERR_UNKNOWN;
	}
	uint64_t *keys = NULL;
	size_t key_count = 0, key_capacity = 0, others = 0, skipped = 0, line_number = 0;
	char *line = NULL;
	size_t line_capacity = 0;
	ssize_t length;
	int rc = MOSQ_ERR_SUCCESS;
	while((length = getline(&line, &line_capacity, file)) >= 0){
		line_number++;
		while(length > 0 && (line[length - 1] == '\n' || line[length - 1] == '\r')) line[--length] = '\0';
		if(length == 0 || line[0] == '#') continue;
		char *colon = strchr(line, ':');
		if(!colon){
			mosquitto_log_printf(MOSQ_LOG_WARNING, "kpm33b-meter-acl: %s:%zu: no ':' (username:hash), line skipped",
					path, line_number);
			skipped++;
			continue;
		}
		char *user = line, *end = colon;
		while(user < end && isblank((unsigned char)*user)) user++;
		while(end > user && isblank((unsigned char)end[-1])) end--;
		if(!is_meter_username(user, (size_t)(end - user))){
			others++;   /* a service's account: its rights are the acl_file's */
			continue;
		}
		if(key_count == MAX_METERS){
			mosquitto_log_printf(MOSQ_LOG_ERR, "kpm33b-meter-acl: %s has more than %u meter accounts",
					path, MAX_METERS);
			rc = MOSQ_ERR_INVAL;
			break;
		}
		if(key_count == key_capacity){
			size_t capacity = key_capacity ? key_capacity * 2 : 1024;
			uint64_t *grown = realloc(keys, capacity * sizeof(*keys));
			if(!grown){ rc = MOSQ_ERR_NOMEM; break; }
			keys = grown;
			key_capacity = capacity;
		}
		keys[key_count++] = pack(user);
	}
	if(rc == MOSQ_ERR_SUCCESS && ferror(file)){
		mosquitto_log_printf(MOSQ_LOG_ERR, "kpm33b-meter-acl: error reading %s", path);
		rc = MOSQ_ERR_UNKNOWN;
	}
	free(line);
	fclose(file);

	struct meter_set set = {0};
	if(rc == MOSQ_ERR_SUCCESS){
		size_t slots = 16;
		while(slots < key_count * 2) slots *= 2;
		set.slots = calloc(slots, sizeof(*set.slots));
		set.mask = slots - 1;
		if(!set.slots) rc = MOSQ_ERR_NOMEM;
	}
	size_t duplicates = 0;
	if(rc == MOSQ_ERR_SUCCESS){
		for(size_t i = 0; i < key_count; i++){
			if(!set_insert(&set, keys[i])) duplicates++;
		}
		*out = set;
		mosquitto_log_printf(MOSQ_LOG_INFO,
				"kpm33b-meter-acl: %zu meter accounts from %s (%zu other accounts, %zu duplicate, %zu lines skipped)",
				set.count, path, others, duplicates, skipped);
	}else if(rc == MOSQ_ERR_NOMEM){
		mosquitto_log_printf(MOSQ_LOG_ERR, "kpm33b-meter-acl: out of memory reading %s", path);
	}
	free(keys);
	return rc;
}

static bool is_meter_write(const char *topic)
{
	for(size_t i = 0; i < COUNT(meter_writes); i++){
		if(!strcmp(topic, meter_writes[i])) return true;
	}
	return false;
}

/* The username a command topic <command><x> addresses, or NULL. */
static const char *command_target(const char *topic, size_t *length)
{
	for(size_t i = 0; i < COUNT(commands); i++){
		size_t prefix = strlen(commands[i]);
		if(!strncmp(topic, commands[i], prefix)){
			*length = strlen(topic + prefix);
			return topic + prefix;
		}
	}
	return NULL;
}

static int on_acl_check(int event, void *event_data, void *userdata)
{
	(void)event;
	struct mosquitto_evt_acl_check *check = event_data;
	struct plugin *plugin = userdata;
	const char *username = mosquitto_client_username(check->client);
	if(!username || !check->topic) return MOSQ_ERR_PLUGIN_DEFER;
	size_t username_length = strlen(username);
	const char *target;
	size_t target_length;

	if(set_contains(&plugin->meters, username, username_length)){
		switch(check->access){
		case MOSQ_ACL_WRITE:
			return is_meter_write(check->topic) ? MOSQ_ERR_SUCCESS : MOSQ_ERR_ACL_DENIED;
		case MOSQ_ACL_READ:
			target = command_target(check->topic, &target_length);
			return target && target_length == username_length && !memcmp(target, username, username_length)
				? MOSQ_ERR_SUCCESS : MOSQ_ERR_ACL_DENIED;
		default:
			return MOSQ_ERR_PLUGIN_DEFER;   /* SUBSCRIBE, UNSUBSCRIBE: see the header */
		}
	}
	if(check->access == MOSQ_ACL_WRITE && !strcmp(username, plugin->config_account)){
		target = command_target(check->topic, &target_length);
		if(target && set_contains(&plugin->meters, target, target_length)) return MOSQ_ERR_SUCCESS;
	}
	return MOSQ_ERR_PLUGIN_DEFER;
}

static int on_reload(int event, void *event_data, void *userdata)
{
	(void)event;
	(void)event_data;
	struct plugin *plugin = userdata;
	struct meter_set fresh = {0};
	if(read_meters(plugin->password_file, &fresh) != MOSQ_ERR_SUCCESS){
		mosquitto_log_printf(MOSQ_LOG_ERR, "kpm33b-meter-acl: reload failed: no meter account has a right until a reload reads %s",
				plugin->password_file);
	}
	free(plugin->meters.slots);
	plugin->meters = fresh;
	return MOSQ_ERR_PLUGIN_DEFER;
}

static void plugin_free(struct plugin *plugin)
{
	if(!plugin) return;
	free(plugin->meters.slots);
	free(plugin->password_file);
	free(plugin->config_account);
	free(plugin);
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for(int i = 0; i < supported_version_count; i++){
		if(supported_versions[i] == 5) return 5;
	}
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata, struct mosquitto_opt *options, int option_count)
{
	struct plugin *plugin = calloc(1, sizeof(*plugin));
	if(!plugin) return MOSQ_ERR_NOMEM;
	plugin->identifier = identifier;
	for(int i = 0; i < option_count; i++){
		char **slot = NULL;
		if(!strcmp(options[i].key, "password_file")) slot = &plugin->password_file;
		else if(!strcmp(options[i].key, "config_account")) slot = &plugin->config_account;
		if(!slot || !options[i].value || !options[i].value[0]){
			mosquitto_log_printf(MOSQ_LOG_ERR, slot ? "kpm33b-meter-acl: plugin_opt_%s is empty"
					: "kpm33b-meter-acl: unknown option plugin_opt_%s (password_file, config_account)", options[i].key);
			plugin_free(plugin);
			return MOSQ_ERR_INVAL;
		}
		free(*slot);
		if(!(*slot = strdup(options[i].value))){ plugin_free(plugin); return MOSQ_ERR_NOMEM; }
	}
	if(!plugin->password_file || !plugin->config_account){
		mosquitto_log_printf(MOSQ_LOG_ERR, "kpm33b-meter-acl: plugin_opt_%s is missing",
				plugin->password_file ? "config_account" : "password_file");
		plugin_free(plugin);
		return MOSQ_ERR_INVAL;
	}
	int rc = read_meters(plugin->password_file, &plugin->meters);
	if(rc == MOSQ_ERR_SUCCESS) rc = mosquitto_callback_register(identifier, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL, plugin);
	if(rc == MOSQ_ERR_SUCCESS){
		rc = mosquitto_callback_register(identifier, MOSQ_EVT_RELOAD, on_reload, NULL, plugin);
		if(rc != MOSQ_ERR_SUCCESS) mosquitto_callback_unregister(identifier, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL);
	}
	if(rc != MOSQ_ERR_SUCCESS){
		plugin_free(plugin);
		return rc;
	}
	*userdata = plugin;
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	(void)options;
	(void)option_count;
	struct plugin *plugin = userdata;
	if(!plugin) return MOSQ_ERR_SUCCESS;
	mosquitto_callback_unregister(plugin->identifier, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL);
	mosquitto_callback_unregister(plugin->identifier, MOSQ_EVT_RELOAD, on_reload, NULL);
	plugin_free(plugin);
	return MOSQ_ERR_SUCCESS;
}
