package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgsession/caddy-pgsession/internal/caddyproc"
	"github.com/pgsession/caddy-pgsession/store"
)

// filePath is the one file every variant serves; fileSize is its size, small
// enough that the cost of a request, not of the transfer, is measured.
const (
	filePath = "/bench.txt"
	fileSize = 1024
)

// variant is one way of serving the file, loaded side by side with the others.
type variant struct {
	name string
	// directives go in the site block before file_server.
	directives func(env *environment) string
	// appOptions go in the global pg_session block; a variant with options
	// of its own is served by a Caddy process of its own, since the app,
	// and so its session cache, is one per process.
	appOptions string
	// header returns the request header wrk sends ("Name: value"), or "".
	header func(env *environment) string
	// guarded variants must refuse a request without the header with 401,
	// which shows the guard really is in front of the file.
	guarded bool
	// manySessions variants send each request with the next of
	// manySessionCount sessions instead of the one in header, so no two
	// requests in a row share a lookup: the cost of a session's first
	// request on a server, request after request. wrk builds each request
	// in Lua for it, which costs the client a little more than a fixed
	// request does.
	manySessions bool
	// forwardsAuth variants ask verifySite, which is then served beside
	// them; there is one verifySite a run, so they must share appOptions.
	forwardsAuth bool
}

// manySessionCount is how many sessions a manySessions variant rotates.
const manySessionCount = 1000

// variants are the sites the harness knows, in the order the table lists them.
var variants = []variant{
	{
		name:       "plain",
		directives: func(*environment) string { return "" },
		header:     func(*environment) string { return "" },
	},
	{
		name:       "gate_cache_on",
		directives: func(*environment) string { return "pg_session" },
		header:     sessionHeader,
		guarded:    true,
	},
	{
		name:       "gate_cache_off",
		directives: func(*environment) string { return "pg_session" },
		appOptions: "cache_size 0",
		header:     sessionHeader,
		guarded:    true,
	},
	{
		name:         "gate_cache_off_many",
		directives:   func(*environment) string { return "pg_session" },
		appOptions:   "cache_size 0",
		header:       sessionHeader,
		guarded:      true,
		manySessions: true,
	},
	{
		// Twenty rules, the file's the last, for a user in three groups:
		// what a site with access rules costs, from memory.
		name:       "gate_rules",
		directives: func(*environment) string { return "pg_session {\n" + benchRules() + "\t}" },
		header:     sessionHeader,
		guarded:    true,
	},
	{
		name:       "gate_api_token",
		directives: func(*environment) string { return "pg_session" },
		header:     func(env *environment) string { return "Authorization: Bearer " + env.apiToken },
		guarded:    true,
	},
	{
		// Caddy's Caddyfile adapter always turns basic_auth's hash cache on
		// (caddyauth/caddyfile.go sets HashCache), so after the first request
		// this measures a cache hit, not bcrypt.
		name: "basic_auth",
		directives: func(env *environment) string {
			return fmt.Sprintf("basic_auth {\n\t\t%s %s\n\t}", basicAuthUser, env.basicAuth.hash)
		},
		header: func(env *environment) string {
			return "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(basicAuthUser+":"+env.basicAuth.password))
		},
		guarded: true,
	},
	{
		// Caddy's forward_auth asks the verify endpoint of a pg_session site
		// in the same process, over loopback, before each request: the cost
		// of a second HTTP hop and a session check from memory.
		name: "forward_auth",
		directives: func(env *environment) string {
			return fmt.Sprintf("forward_auth 127.0.0.1:%d {\n\t\turi %s\n\t\tcopy_headers %s\n\t}",
				env.verifyPort, verifyPath, "X-Auth-User-Id X-Auth-Username X-Auth-Groups X-Auth-Method")
		},
		header:       sessionHeader,
		guarded:      true,
		forwardsAuth: true,
	},
}

// verifySite serves the verify endpoint forward_auth asks; it is not loaded
// by itself, so it is not among the variants.
var verifySite = variant{name: "verify endpoint", directives: func(*environment) string { return "pg_session" }}

// verifyPath is pg_session's verify endpoint under the default api_path.
const verifyPath = "/api/auth/verify"

func sessionHeader(env *environment) string { return "Cookie: session=" + env.token }

// benchGroups are the bench user's groups, for gate_rules.
var benchGroups = []string{"devs", "ops", "staff"}

// benchRules are gate_rules' twenty rules: nineteen for other paths, then
// the one that admits the bench user to the file through its last group.
func benchRules() string {
	var b strings.Builder
	for i := range 19 {
		fmt.Fprintf(&b, "\t\tallow /area%d/* group team%d admins\n", i, i)
	}
	fmt.Fprintf(&b, "\t\tallow %s group staff\n", filePath)
	return b.String()
}

func variantNames() []string {
	names := make([]string, len(variants))
	for i, v := range variants {
		names[i] = v.name
	}
	return names
}

func variantByName(name string) (variant, bool) {
	for _, v := range variants {
		if v.name == name {
			return v, true
		}
	}
	return variant{}, false
}

// environment is what every measurement shares.
type environment struct {
	cfg       config
	binary    string
	root      string // the folder file_server serves
	wrkScript string // the path of wrkScript
	// manyScript is the path of the script that rotates manySessionCount
	// sessions, written only when a variant needs it.
	manyScript string
	dbURL      string
	store      *store.Store
	pool       *pgxpool.Pool // the store's, for rows written behind its back
	user       *store.User   // owns every session
	token      string        // a live session for the gated variants
	apiToken   string        // the user's API token, for gate_api_token
	basicAuth  basicAuth
	ports      map[string]int // the port of each site
	pids       map[string]int // the Caddy process serving each site
	admins     map[string]int // the admin port of the Caddy serving each site, with -profile
	verifyPort int            // verifySite's, for the forwardsAuth variants
	meter      cpuMeter       // the loaded Caddy's and PostgreSQL's CPU time
}

const basicAuthUser = "bench"

// basicAuth is the one account of the basic_auth variant.
type basicAuth struct {
	password, hash string
}

// newBasicAuth hashes a password at bcrypt's default cost; with Caddy's
// hash cache only the first request pays for it.
func newBasicAuth() (basicAuth, error) {
	const password = "correct horse battery staple"
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return basicAuth{}, fmt.Errorf("hashing the basic_auth password: %w", err)
	}
	return basicAuth{password: password, hash: string(hash)}, nil
}

// writeSite writes the file every variant serves.
func writeSite(root string) error {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(root, filePath), fileContent(), 0o644)
}

// fileContent is printable, so a response is easy to read when debugging.
func fileContent() []byte {
	line := "caddy-pgsession benchmark: the same kilobyte behind each variant.\n"
	return bytes.Repeat([]byte(line), fileSize/len(line)+1)[:fileSize]
}

// globalOptions starts every Caddyfile: no automatic HTTPS, since all sites
// are plain HTTP on loopback, and the app pointed at the bench database.
// servers are servers options, each ending in a newline, or "".
func (env *environment) globalOptions(admin, appOptions, servers string) string {
	return fmt.Sprintf("{\n\tadmin %s\n\tauto_https off\n%s\tpg_session {\n\t\tdatabase_url %s\n\t\t%s\n\t}\n}\n",
		admin, servers, env.dbURL, appOptions)
}

func (env *environment) siteBlock(v variant, port int) string {
	directives := v.directives(env)
	var b strings.Builder
	fmt.Fprintf(&b, "\n# %s\nhttp://127.0.0.1:%d {\n\troot * %q\n", v.name, port, env.root)
	if directives != "" {
		fmt.Fprintf(&b, "\t%s\n", directives)
	}
	b.WriteString("\tfile_server\n}\n")
	return b.String()
}

// startServerA starts the Caddy that serves the variants, one port each, so
// they share one process, one pool and one set of caches; a variant with
// app options of its own gets a process of its own (and the loaded
// process's CPU time is what is measured for each).
func (env *environment) startServerA(sites []string) ([]*caddyproc.Process, error) {
	ports, err := caddyproc.FreePorts(2*len(sites) + 1)
	if err != nil {
		return nil, err
	}
	// The second half are admin ports, one per process, used only with
	// -profile: otherwise the admin endpoint is off, as in production. The
	// last is verifySite's.
	env.verifyPort = ports[2*len(sites)]
	ports, adminPorts := ports[:len(sites)], ports[len(sites):2*len(sites)]
	env.ports = make(map[string]int, len(sites))
	env.pids = make(map[string]int, len(sites))
	env.admins = make(map[string]int, len(sites))
	groups := map[string][]string{}
	var order []string
	for i, name := range sites {
		v, _ := variantByName(name)
		env.ports[name] = ports[i]
		if _, ok := groups[v.appOptions]; !ok {
			order = append(order, v.appOptions)
		}
		groups[v.appOptions] = append(groups[v.appOptions], name)
	}
	var procs []*caddyproc.Process
	for i, opts := range order {
		admin := "off"
		if env.cfg.profile != "" {
			admin = fmt.Sprintf("127.0.0.1:%d", adminPorts[i])
		}
		caddyfile := env.processCaddyfile(admin, opts, groups[opts])
		progress("starting Caddy with %s", strings.Join(groups[opts], ", "))
		p, err := caddyproc.StartProcess(env.binary, caddyfile, siteURL(env.ports[groups[opts][0]]))
		if err != nil {
			for _, q := range procs {
				q.Stop()
			}
			return nil, err
		}
		procs = append(procs, p)
		for _, name := range groups[opts] {
			env.pids[name] = p.PID()
			env.admins[name] = adminPorts[i]
		}
	}
	return procs, nil
}

// processCaddyfile is the Caddyfile of one process of server A, serving the
// named variants with the app options opts. The verify site shares the
// process, and so the session cache, of the variants that ask it, and
// trusts them as proxies, so that it reads the method and URI forward_auth
// forwards, as a deployment that has rules for them must.
func (env *environment) processCaddyfile(admin, opts string, names []string) string {
	var sites, servers string
	for _, name := range names {
		v, _ := variantByName(name)
		sites += env.siteBlock(v, env.ports[name])
		if v.forwardsAuth && servers == "" {
			sites += env.siteBlock(verifySite, env.verifyPort)
			servers = fmt.Sprintf("\tservers :%d {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}\n", env.verifyPort)
		}
	}
	return env.globalOptions(admin, opts, servers) + sites
}

// serverB is the second Caddy: the gated site alone, on the same database,
// with an admin endpoint so its Go heap can be read.
type serverB struct {
	*caddyproc.Process
	port, adminPort int
}

func (env *environment) startServerB() (*serverB, error) {
	ports, err := caddyproc.FreePorts(2)
	if err != nil {
		return nil, err
	}
	v, _ := variantByName("gate_cache_on")
	caddyfile := env.globalOptions(fmt.Sprintf("127.0.0.1:%d", ports[1]), "cache_size 200000", "") + env.siteBlock(v, ports[0])
	progress("starting a second Caddy (server B) with gate_cache_on")
	p, err := caddyproc.StartProcess(env.binary, caddyfile, siteURL(ports[0]))
	if err != nil {
		return nil, err
	}
	return &serverB{Process: p, port: ports[0], adminPort: ports[1]}, nil
}

func siteURL(port int) string { return fmt.Sprintf("http://127.0.0.1:%d%s", port, filePath) }

// rawGet sends the request wrk would send on a connection of its own and
// returns the status, the body and how many bytes the whole response took
// on the wire, which is what wrk counts.
func rawGet(port int, header string) (status int, body []byte, wireBytes int64, err error) {
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, nil, 0, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return 0, nil, 0, err
	}
	req := "GET " + filePath + " HTTP/1.1\r\nHost: " + addr + "\r\n"
	if header != "" {
		req += header + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		return 0, nil, 0, err
	}
	counter := &countingReader{r: conn}
	br := bufio.NewReader(counter)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, nil, 0, err
	}
	body, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, nil, 0, err
	}
	return resp.StatusCode, body, counter.n - int64(br.Buffered()), nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// preflight checks that a variant serves the file with its header and, if
// guarded, refuses without it; it returns the size of a full response,
// against which wrk's byte count is checked.
func (env *environment) preflight(v variant) (int64, error) {
	port := env.ports[v.name]
	status, body, size, err := rawGet(port, v.header(env))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", v.name, err)
	}
	if status != http.StatusOK || !bytes.Equal(body, fileContent()) {
		return 0, fmt.Errorf("%s: got %d with %d bytes, want 200 with the %d-byte file", v.name, status, len(body), fileSize)
	}
	if v.guarded {
		status, _, _, err := rawGet(port, "")
		if err != nil {
			return 0, fmt.Errorf("%s: %w", v.name, err)
		}
		if status != http.StatusUnauthorized {
			return 0, fmt.Errorf("%s: a request without credentials got %d, want 401: the guard is not in front of the file", v.name, status)
		}
	}
	return size, nil
}
