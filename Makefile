# The test command CI runs on a clean clone: vet, then every test with the race detector.
.PHONY: test vet bench build demo

test: vet
	go test -race -count=1 ./...

vet:
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed on:"; gofmt -l .; exit 1; }
	go vet ./...

bench:
	go test -run '^$$' -bench . -benchmem ./store/ ./bench/

build:
	go build -o caddy ./cmd/caddy

# A static site with a login in front of it on http://localhost:8080, with a
# throwaway PostgreSQL unless DATABASE_URL is set; Ctrl-C stops it. See demo/run.sh.
demo:
	@bash demo/run.sh
