package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/synchub/synchub/cdc/postgres"
	"github.com/synchub/synchub/hub"
	"github.com/synchub/synchub/hub/api"
	"github.com/synchub/synchub/hub/auth"
	"github.com/synchub/synchub/hub/conflict"
	"github.com/synchub/synchub/hub/dashboard"
	"github.com/synchub/synchub/hub/rules"
)

// fileConfig is hub.yaml. Every key is documented in README.md; an unknown key is an
// error that names it. Each key can be overridden by an environment variable named
// SYNCHUB_ followed by its path in upper case joined by "_" (source.dsn →
// SYNCHUB_SOURCE_DSN; lists are comma-separated), and some by flags.
type fileConfig struct {
	Listen   string        `yaml:"listen"`
	LogLevel string        `yaml:"log_level"`
	Source   sourceConfig  `yaml:"source"`
	Store    storeConfig   `yaml:"store"`
	Ingest   ingestConfig  `yaml:"ingest"`
	Log      changelogConf `yaml:"changelog"`
	API      apiConfig     `yaml:"api"`
	Push     pushConfig    `yaml:"push"`
	Audit    auditConfig   `yaml:"audit"`
	Metrics  metricsConfig `yaml:"metrics"`
	// Auth is edge and admin authentication; Limits bound each edge's requests; TLS
	// makes the sync API serve HTTPS.
	Auth   authConfig   `yaml:"auth"`
	Limits limitsConfig `yaml:"limits"`
	TLS    tlsConfig    `yaml:"tls"`
	// Dashboard is the admin dashboard under /ui.
	Dashboard dashboardConfig `yaml:"dashboard"`
	// Rules are the sync rules: per edge group, the tables, columns and rows its
	// edges receive and may write.
	Rules rulesFileConfig `yaml:"rules"`
}

type rulesFileConfig struct {
	GroupClaim   string                     `yaml:"group_claim"`
	DefaultGroup string                     `yaml:"default_group"`
	Groups       map[string]ruleGroupConfig `yaml:"groups"`
}

type ruleGroupConfig struct {
	Tables map[string]ruleTableConfig `yaml:"tables"`
}

type ruleTableConfig struct {
	Filter  string   `yaml:"filter"`
	Columns []string `yaml:"columns"`
}

// rules turns the rules: section into the rules library's Config.
func (c rulesFileConfig) rules() rules.Config {
	r := rules.Config{GroupClaim: c.GroupClaim, DefaultGroup: c.DefaultGroup}
	for name, g := range c.Groups {
		if r.Groups == nil {
			r.Groups = map[string]rules.GroupConfig{}
		}
		gc := rules.GroupConfig{Tables: map[string]rules.TableConfig{}}
		for t, tc := range g.Tables {
			gc.Tables[t] = rules.TableConfig{Filter: tc.Filter, Columns: tc.Columns}
		}
		r.Groups[name] = gc
	}
	return r
}

type dashboardConfig struct {
	// Users may sign in; set them in the file (there is no environment override for a
	// list of users).
	Users        []dashboardUser `yaml:"users"`
	SessionTTL   time.Duration   `yaml:"session_ttl"`
	CookieSecure bool            `yaml:"cookie_secure"`
	OnlineWindow time.Duration   `yaml:"online_window"`
	// EdgesPath is the edge registry's file (every edge's last contact and watermark).
	EdgesPath string `yaml:"edges_path"`
}

type dashboardUser struct {
	Name         string `yaml:"name"`
	PasswordHash string `yaml:"password_hash"`
	Role         string `yaml:"role"`
}

type pushConfig struct {
	MaxBatchChanges int           `yaml:"max_batch_changes"`
	WaitTimeout     time.Duration `yaml:"wait_timeout"`
	OrderWait       time.Duration `yaml:"order_wait"`
	AnswerRetention time.Duration `yaml:"answer_retention"`
	MetaPath        string        `yaml:"meta_path"`
	DefaultPolicy   string        `yaml:"default_policy"`
	DefaultTiebreak string        `yaml:"default_tiebreak"`
	// Policies maps a table to its conflict policy; set it in the file (there is no
	// environment override for a map).
	Policies map[string]conflict.TablePolicy `yaml:"policies"`
}

type authConfig struct {
	// Methods are the edge credentials accepted: api_key, jwt, or both. Empty: no edge
	// authentication, and the hub serves only on a loopback address.
	Methods []string `yaml:"methods"`
	// KeysPath is the API key database (`synchub keys`).
	KeysPath string        `yaml:"keys_path"`
	JWT      jwtConfig     `yaml:"jwt"`
	Signing  signingConfig `yaml:"signing"`
}

type jwtConfig struct {
	Algorithm      string        `yaml:"algorithm"`
	KeyFile        string        `yaml:"key_file"`
	JWKSURL        string        `yaml:"jwks_url"`
	Issuer         string        `yaml:"issuer"`
	Audience       string        `yaml:"audience"`
	EdgeClaim      string        `yaml:"edge_claim"`
	Leeway         time.Duration `yaml:"leeway"`
	JWKSMinRefresh time.Duration `yaml:"jwks_min_refresh"`
	JWKSCacheTTL   time.Duration `yaml:"jwks_cache_ttl"`
}

type signingConfig struct {
	Required        bool          `yaml:"required"`
	Window          time.Duration `yaml:"window"`
	ReplayCacheSize int           `yaml:"replay_cache_size"`
}

type limitsConfig struct {
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// MaxBatchChanges, when set, replaces push.max_batch_changes.
	MaxBatchChanges    int           `yaml:"max_batch_changes"`
	RatePerSecond      float64       `yaml:"rate_per_second"`
	Burst              int           `yaml:"burst"`
	MaxLongPolls       int           `yaml:"max_long_polls"`
	LongPollRetryAfter time.Duration `yaml:"long_poll_retry_after"`
}

type tlsConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

type metricsConfig struct {
	// PerEdge adds series labelled by edge id; keep it off with many edges.
	PerEdge bool `yaml:"per_edge"`
}

type auditConfig struct {
	Path      string        `yaml:"path"`
	Retention time.Duration `yaml:"retention"`
}

type sourceConfig struct {
	Kind             string        `yaml:"kind"`
	DSN              string        `yaml:"dsn"`
	Tables           []string      `yaml:"tables"`
	Slot             string        `yaml:"slot"`
	Publication      string        `yaml:"publication"`
	SnapshotPageRows int           `yaml:"snapshot_page_rows"`
	StatusInterval   time.Duration `yaml:"status_interval"`
	// ServerID is the replication client id the hub uses on MySQL/MariaDB; it must
	// differ from every server's and other replica's server_id (0: derived).
	ServerID uint32 `yaml:"server_id"`
}

type storeConfig struct {
	Kind        string `yaml:"kind"`
	Path        string `yaml:"path"`
	Synchronous string `yaml:"synchronous"`
}

type ingestConfig struct {
	GroupMaxChanges int           `yaml:"group_max_changes"`
	ReconnectMin    time.Duration `yaml:"reconnect_min"`
	ReconnectMax    time.Duration `yaml:"reconnect_max"`
}

type changelogConf struct {
	Retention          time.Duration `yaml:"retention"`
	TombstoneRetention time.Duration `yaml:"tombstone_retention"`
	CompactInterval    time.Duration `yaml:"compact_interval"`
}

type apiConfig struct {
	MaxPageChanges int           `yaml:"max_page_changes"`
	MaxWait        time.Duration `yaml:"max_wait"`
}

// defaultFileConfig mirrors the library defaults so README, file and code agree.
func defaultFileConfig() fileConfig {
	h := hub.DefaultConfig()
	pg := postgres.DefaultConfig()
	ac, lim := auth.DefaultConfig(), api.DefaultLimits()
	return fileConfig{
		Listen:   h.Listen,
		LogLevel: "info",
		Source: sourceConfig{
			Kind:             "postgres",
			Slot:             pg.Slot,
			Publication:      pg.Publication,
			SnapshotPageRows: pg.SnapshotPageRows,
			StatusInterval:   pg.StatusInterval,
		},
		Store: storeConfig{Kind: "sqlite", Path: "./data/changelog.db", Synchronous: "normal"},
		Ingest: ingestConfig{
			GroupMaxChanges: h.GroupMaxChanges,
			ReconnectMin:    h.ReconnectMin,
			ReconnectMax:    h.ReconnectMax,
		},
		Log: changelogConf{
			Retention:          h.Compact.Retention,
			TombstoneRetention: h.Compact.TombstoneRetention,
			CompactInterval:    h.CompactInterval,
		},
		API: apiConfig{MaxPageChanges: h.API.MaxPageChanges, MaxWait: h.API.MaxWait},
		Push: pushConfig{
			MaxBatchChanges: h.Push.MaxBatchChanges,
			WaitTimeout:     h.Push.WaitTimeout,
			OrderWait:       h.Push.OrderWait,
			AnswerRetention: h.Push.AnswerRetention,
			MetaPath:        "./data/hub-meta.db",
			DefaultPolicy:   string(conflict.DefaultPolicy),
			DefaultTiebreak: string(conflict.DefaultTiebreak),
		},
		Audit: auditConfig{Path: "./data/audit.db", Retention: 90 * 24 * time.Hour},
		Auth: authConfig{
			KeysPath: "./data/keys.db",
			JWT: jwtConfig{EdgeClaim: ac.JWT.EdgeClaim, Leeway: ac.JWT.Leeway,
				JWKSMinRefresh: ac.JWT.JWKSMinRefresh, JWKSCacheTTL: ac.JWT.JWKSCacheTTL},
			Signing: signingConfig{Window: ac.Signing.Window, ReplayCacheSize: ac.Signing.ReplayCacheSize},
		},
		Limits: limitsConfig{
			MaxBodyBytes:       h.API.BodyLimit,
			RatePerSecond:      lim.RatePerSecond,
			Burst:              lim.Burst,
			MaxLongPolls:       lim.MaxLongPolls,
			LongPollRetryAfter: lim.LongPollRetryAfter,
		},
		Dashboard: dashboardConfig{
			SessionTTL:   h.Dashboard.SessionTTL,
			OnlineWindow: h.Dashboard.OnlineWindow,
			EdgesPath:    "./data/edges.db",
		},
	}
}

// loadConfig reads path (if not empty) over the defaults, then applies environment
// overrides from env (KEY=VALUE strings, as os.Environ returns).
func loadConfig(path string, env []string) (fileConfig, error) {
	cfg := defaultFileConfig()
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("read config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return cfg, fmt.Errorf("config %s: %w (see the configuration reference in README.md)", path, err)
		}
	}
	if err := applyEnv(&cfg, env); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// envNotConfig lists SYNCHUB_ variables that are not configuration keys.
var envNotConfig = map[string]bool{"SYNCHUB_PG_BIN": true, "SYNCHUB_MARIADB_BIN": true, "SYNCHUB_EDGE_HUB": true, "SYNCHUB_EDGE_DB": true,
	"SYNCHUB_EDGE_API_KEY": true, "SYNCHUB_EDGE_TOKEN": true, "SYNCHUB_EDGE_SIGNING_SECRET": true}

// applyEnv overrides cfg from SYNCHUB_* variables; an unknown SYNCHUB_ variable is an
// error naming it, so a typo never goes unnoticed.
func applyEnv(cfg *fileConfig, env []string) error {
	fields := map[string]reflect.Value{}
	collectEnvFields(reflect.ValueOf(cfg).Elem(), "SYNCHUB", fields)
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, "SYNCHUB_") || envNotConfig[k] {
			continue
		}
		f, ok := fields[k]
		if !ok {
			return fmt.Errorf("environment variable %s is not a configuration key (known: %s)", k, strings.Join(sortedKeys(fields), ", "))
		}
		if err := setFromString(f, v); err != nil {
			return fmt.Errorf("environment variable %s=%q: %w", k, v, err)
		}
	}
	return nil
}

func collectEnvFields(v reflect.Value, prefix string, out map[string]reflect.Value) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
		if tag == "" || tag == "-" {
			continue
		}
		name := prefix + "_" + strings.ToUpper(tag)
		f := v.Field(i)
		if f.Kind() == reflect.Struct {
			collectEnvFields(f, name, out)
			continue
		}
		out[name] = f
	}
}

func setFromString(f reflect.Value, s string) error {
	switch {
	case f.Type() == reflect.TypeOf(time.Duration(0)):
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("not a duration like 30s or 5m")
		}
		f.SetInt(int64(d))
	case f.Kind() == reflect.String:
		f.SetString(s)
	case f.Kind() == reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("not an integer")
		}
		f.SetInt(int64(n))
	case f.Kind() == reflect.Float64:
		n, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("not a number")
		}
		f.SetFloat(n)
	case f.Kind() == reflect.Uint32:
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return fmt.Errorf("not an integer between 0 and 4294967295")
		}
		f.SetUint(n)
	case f.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("not true or false")
		}
		f.SetBool(b)
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
		var parts []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		f.Set(reflect.ValueOf(parts))
	default:
		return fmt.Errorf("%s cannot be set from the environment; set it in the configuration file", f.Type())
	}
	return nil
}

func sortedKeys(m map[string]reflect.Value) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}

// hubConfig turns the file configuration into the hub library's Config.
func (c fileConfig) hubConfig() hub.Config {
	h := hub.DefaultConfig()
	h.Listen = c.Listen
	h.SourceKind = c.Source.Kind
	h.GroupMaxChanges = c.Ingest.GroupMaxChanges
	h.ReconnectMin, h.ReconnectMax = c.Ingest.ReconnectMin, c.Ingest.ReconnectMax
	h.Compact.Retention, h.Compact.TombstoneRetention = c.Log.Retention, c.Log.TombstoneRetention
	h.CompactInterval = c.Log.CompactInterval
	h.API.MaxPageChanges, h.API.MaxWait = c.API.MaxPageChanges, c.API.MaxWait
	h.Push.MaxBatchChanges, h.Push.WaitTimeout = c.Push.MaxBatchChanges, c.Push.WaitTimeout
	h.Push.OrderWait, h.Push.AnswerRetention = c.Push.OrderWait, c.Push.AnswerRetention
	h.Push.MetaPath = c.Push.MetaPath
	h.Push.DefaultPolicy = conflict.TablePolicy{Policy: conflict.Policy(c.Push.DefaultPolicy), Tiebreak: conflict.Tiebreak(c.Push.DefaultTiebreak)}
	h.Push.Policies = c.Push.Policies
	h.Metrics.PerEdge = c.Metrics.PerEdge
	h.API.BodyLimit = c.Limits.MaxBodyBytes
	if c.Limits.MaxBatchChanges > 0 {
		h.Push.MaxBatchChanges = c.Limits.MaxBatchChanges
	}
	h.API.Limits = api.Limits{RatePerSecond: c.Limits.RatePerSecond, Burst: c.Limits.Burst,
		MaxLongPolls: c.Limits.MaxLongPolls, LongPollRetryAfter: c.Limits.LongPollRetryAfter}
	h.API.TLS = api.TLSConfig{CertFile: c.TLS.CertFile, KeyFile: c.TLS.KeyFile}
	// Cookies are Secure when asked for, and always when the hub itself serves HTTPS.
	h.Dashboard.SessionTTL = c.Dashboard.SessionTTL
	h.Dashboard.CookieSecure = c.Dashboard.CookieSecure || c.TLS.CertFile != ""
	h.Dashboard.OnlineWindow = c.Dashboard.OnlineWindow
	h.Dashboard.Users = nil
	for _, u := range c.Dashboard.Users {
		h.Dashboard.Users = append(h.Dashboard.Users, dashboard.User{Name: u.Name, PasswordHash: u.PasswordHash, Role: u.Role})
	}
	h.Edges.Path = c.Dashboard.EdgesPath
	h.Rules = c.Rules.rules()
	return h
}

// authConfig turns the auth: section into the auth library's Config.
func (c fileConfig) authConfig() auth.Config {
	a := auth.DefaultConfig()
	a.Methods = c.Auth.Methods
	j := c.Auth.JWT
	a.JWT = auth.JWTConfig{Algorithm: j.Algorithm, KeyFile: j.KeyFile, JWKSURL: j.JWKSURL, Issuer: j.Issuer,
		Audience: j.Audience, EdgeClaim: j.EdgeClaim, Leeway: j.Leeway, JWKSMinRefresh: j.JWKSMinRefresh, JWKSCacheTTL: j.JWKSCacheTTL}
	a.Signing = auth.SigningConfig{Required: c.Auth.Signing.Required, Window: c.Auth.Signing.Window, ReplayCacheSize: c.Auth.Signing.ReplayCacheSize}
	return a
}

// validate checks what the libraries cannot: the kinds and required keys.
func (c fileConfig) validate() error {
	switch c.Source.Kind {
	case "postgres":
		if c.Source.DSN == "" {
			return errors.New("source.dsn: missing; set it (or SYNCHUB_SOURCE_DSN) to a PostgreSQL URL such as postgres://app@127.0.0.1:5432/app")
		}
		if len(c.Source.Tables) == 0 {
			return errors.New("source.tables: empty; list the tables to capture, e.g. [public.customers, public.orders]")
		}
		if c.Source.Slot == "" || c.Source.Publication == "" {
			return errors.New("source.slot and source.publication: must not be empty")
		}
		if c.Source.StatusInterval <= 0 {
			return fmt.Errorf("source.status_interval: %v; must be positive, and well below the server's wal_sender_timeout", c.Source.StatusInterval)
		}
	case "mysql":
		if c.Source.DSN == "" {
			return errors.New("source.dsn: missing; set it (or SYNCHUB_SOURCE_DSN) to a MySQL/MariaDB URL such as mysql://repl:secret@127.0.0.1:3306/shop")
		}
		if len(c.Source.Tables) == 0 {
			return errors.New("source.tables: empty; list the tables to capture as database.table, e.g. [shop.customers, shop.orders]")
		}
	case "":
		return errors.New("source.kind: missing; set it to postgres or mysql (MySQL and MariaDB)")
	default:
		return fmt.Errorf("source.kind: %q is not supported; use postgres or mysql (MySQL and MariaDB)", c.Source.Kind)
	}
	switch c.Store.Kind {
	case "sqlite":
	default:
		return fmt.Errorf("store.kind: %q is not supported; use sqlite", c.Store.Kind)
	}
	if c.Store.Path == "" {
		return errors.New("store.path: missing; set a file path such as ./data/changelog.db")
	}
	switch strings.ToLower(c.Store.Synchronous) {
	case "normal", "full":
	default:
		return fmt.Errorf("store.synchronous: %q; use normal (survives a killed hub) or full (also survives power loss)", c.Store.Synchronous)
	}
	if c.Source.SnapshotPageRows < 1 {
		return fmt.Errorf("source.snapshot_page_rows: %d; must be at least 1", c.Source.SnapshotPageRows)
	}
	if c.Push.MetaPath == "" {
		return errors.New("push.meta_path: missing; set a file path such as ./data/hub-meta.db (push batches, conflict queue, rejected changes)")
	}
	if c.Audit.Path == "" {
		return errors.New("audit.path: missing; set a file path such as ./data/audit.db")
	}
	if c.Auth.KeysPath == "" {
		return errors.New("auth.keys_path: missing; set a file path such as ./data/keys.db (API keys, see `synchub keys`)")
	}
	if err := c.authConfig().Validate(); err != nil {
		return err
	}
	if c.Limits.MaxBodyBytes < 1 {
		return fmt.Errorf("limits.max_body_bytes: %d; set a positive size in bytes such as 4194304", c.Limits.MaxBodyBytes)
	}
	if c.Limits.MaxBatchChanges < 0 {
		return fmt.Errorf("limits.max_batch_changes: %d; use 0 (push.max_batch_changes applies) or a positive count", c.Limits.MaxBatchChanges)
	}
	if c.Audit.Retention < 0 {
		return fmt.Errorf("audit.retention: %v; use a positive duration such as 2160h (90 days), or 0 to keep everything", c.Audit.Retention)
	}
	if err := c.hubConfig().Dashboard.Validate(); err != nil {
		return err
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level: %q; use debug, info, warn or error", c.LogLevel)
	}
	return nil
}
