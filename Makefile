# The test command CI runs on a clean clone: vet, every test with the race
# detector, then each fuzz target for a short while. test-short is the fast
# tier for while you work: every test, without the race detector (so no
# -race Caddy binary is built) and without fuzzing.
.PHONY: test test-short vet bench build demo gate-path

test: vet
	@test "$$(go env CGO_ENABLED)" = 1 && command -v "$$(go env CC)" >/dev/null || { \
		echo "make test runs the race detector, which needs cgo and a C compiler: install gcc (apt-get install gcc) and keep CGO_ENABLED=1, or use make test-short"; exit 1; }
	go test -race -count=1 ./...
	@$(MAKE) --no-print-directory gate-path
	@$(MAKE) --no-print-directory fuzz-short

test-short: vet
	go test -count=1 ./...

vet:
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed on:"; gofmt -l .; exit 1; }
	go vet ./...

bench:
	go test -run '^$$' -bench . -benchmem . ./store/ ./bench/

build:
	go build -o caddy ./cmd/caddy

# Which of the project's files one request the gate lets through runs code
# in, from a coverage profile of one such request: at most six.
gate-path:
	@bash bench/gatepath.sh

# A static site with a login in front of it on http://localhost:8080, with a
# throwaway PostgreSQL unless DATABASE_URL is set, and two-step sign-in under a
# key made for it unless PGSESSION_SECRETS_KEY is set; Ctrl-C stops it. See
# demo/run.sh.
demo:
	@bash demo/run.sh

# Fuzzing: every target, as package:name (go test fuzzes one target per run).
# make test fuzzes each for FUZZTIME_SHORT after the tests; make fuzz for
# FUZZTIME. Their seed corpora (testdata/fuzz/<name>) also run as ordinary
# tests, and an input that fails while fuzzing is written there: commit it
# with the fix, as a regression test. No -race: the targets are
# single-goroutine functions, and the race detector would make each run
# 25-50 times slower and need a build of its own.
FUZZ_TARGETS = ./store:FuzzValidToken ./internal/request:FuzzSafeRedirect ./internal/request:FuzzSafeReturn ./internal/request:FuzzDecodeLoginBody .:FuzzUnmarshalCaddyfile ./internal/access:FuzzParseRule ./internal/access:FuzzMatchesAsCaddy
FUZZTIME ?= 2m
FUZZTIME_SHORT ?= 10s

# fuzz-each runs every target for $(1) and fails at the end if any failed.
# On a busy machine Go's fuzzing coordinator can end a run that found
# nothing with a bare "context deadline exceeded" when -fuzztime is up:
# that alone, with no failing input written, no seed failure and no panic,
# is reported and not counted.
define fuzz-each
	@failed=; log=$$(mktemp); trap 'rm -f "$$log" "$$log.rc"' EXIT; \
	for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t#*:}; \
		echo "fuzzing $$name in $$pkg for $(1)"; \
		{ go test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(1) $$pkg; echo $$? >"$$log.rc"; } 2>&1 | tee "$$log"; \
		if [ "$$(cat "$$log.rc")" = 0 ]; then continue; fi; \
		if grep -qx '    context deadline exceeded' "$$log" && \
			! grep -qE 'Failing input written to|failure while testing seed corpus entry|^panic:' "$$log"; then \
			echo "$$name: fuzzing ended on the coordinator's deadline, no failing input: not counted"; \
		else \
			failed="$$failed $$name"; \
		fi; \
	done; \
	test -z "$$failed" || { echo "fuzzing failed:$$failed (failing inputs are in testdata/fuzz)"; exit 1; }
endef

.PHONY: fuzz fuzz-short
fuzz-short:
	$(call fuzz-each,$(FUZZTIME_SHORT))

fuzz:
	$(call fuzz-each,$(FUZZTIME))

# The gate side by side with a plain site and basic_auth in one run (ratios,
# since the machine is shared), logout reaching a second server, and memory
# per session; needs wrk. Flags through ARGS, e.g.
# make bench-gate ARGS='-rounds 2 -duration 3s' (go run ./bench/gate -h lists them).
.PHONY: bench-gate
bench-gate:
	go run ./bench/gate $(ARGS)
