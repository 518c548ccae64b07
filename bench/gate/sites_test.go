package main

import (
	"strings"
	"testing"
)

// TestDefaultVariants makes sure the default -variants loads every variant,
// forward_auth among them.
func TestDefaultVariants(t *testing.T) {
	cfg, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(cfg.variants, ","), strings.Join(variantNames(), ","); got != want {
		t.Errorf("default variants %s, want %s", got, want)
	}
	if _, ok := variantByName("forward_auth"); !ok {
		t.Error("no forward_auth variant")
	}
}

// TestForwardAuthSite checks that forward_auth guards file_server with the
// verify site's answer, that the verify site is served in the same process
// and trusts it as a proxy, and that the variants that ask it share one
// process, since a run has one verify site.
func TestForwardAuthSite(t *testing.T) {
	env := &environment{root: "/srv", verifyPort: 4321, ports: map[string]int{"plain": 1000, "forward_auth": 1001}}
	caddyfile := env.processCaddyfile("off", "", []string{"plain", "forward_auth"})
	for _, want := range []string{
		"\tservers :4321 {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}\n",
		"http://127.0.0.1:1001 {\n\troot * \"/srv\"\n\tforward_auth 127.0.0.1:4321 {\n\t\turi " + verifyPath +
			"\n\t\tcopy_headers X-Auth-User-Id X-Auth-Username X-Auth-Groups X-Auth-Method\n\t}\n\tfile_server\n}\n",
		"http://127.0.0.1:4321 {\n\troot * \"/srv\"\n\tpg_session\n\tfile_server\n}\n",
	} {
		if !strings.Contains(caddyfile, want) {
			t.Errorf("the Caddyfile lacks\n%s\nin\n%s", want, caddyfile)
		}
	}
	if strings.Contains(env.processCaddyfile("off", "", []string{"plain"}), ":4321") {
		t.Error("the verify site is served without a variant that asks it")
	}
	options := map[string]bool{}
	for _, v := range variants {
		if v.forwardsAuth {
			options[v.appOptions] = true
			if !v.guarded {
				t.Errorf("%s is not guarded: a refusal would not be checked", v.name)
			}
		}
	}
	if len(options) > 1 {
		t.Errorf("forwardsAuth variants have %d sets of app options; the one verify site serves one", len(options))
	}
}
