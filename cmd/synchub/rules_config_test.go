package main

import (
	"strings"
	"testing"
)

const rulesConfig = issueConfig + `rules:
  group_claim: tenant_group
  default_group: stores
  groups:
    stores:
      tables:
        public.orders:    {filter: "store_id = {edge.store_id}"}
        public.customers: {filter: all, columns: [id, name]}
`

func TestLoadConfig_Rules(t *testing.T) {
	cfg, err := loadConfig(writeConfig(t, rulesConfig), nil)
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.hubConfig().Rules
	if r.GroupClaim != "tenant_group" || r.DefaultGroup != "stores" || len(r.Groups) != 1 {
		t.Fatalf("rules: %+v", r)
	}
	tables := r.Groups["stores"].Tables
	if tables["public.orders"].Filter != "store_id = {edge.store_id}" ||
		strings.Join(tables["public.customers"].Columns, ",") != "id,name" || tables["public.customers"].Filter != "all" {
		t.Fatalf("rules tables: %+v", tables)
	}
	if err := cfg.hubConfig().Validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	_, err = loadConfig(writeConfig(t, strings.Replace(rulesConfig, "{filter: all,", "{filtre: all,", 1)), nil)
	if err == nil || !strings.Contains(err.Error(), "filtre") {
		t.Fatalf("unknown key in rules: %v", err)
	}
	cfg, err = loadConfig(writeConfig(t, strings.Replace(rulesConfig, "store_id = {edge.store_id}", "store_id == {edge.store_id}", 1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.hubConfig().Validate(); err == nil || !strings.Contains(err.Error(), "public.orders") {
		t.Fatalf("malformed filter: %v", err)
	}
}
