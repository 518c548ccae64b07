// Package pgsession is a Caddy module that puts a login in front of a site,
// with server-side sessions kept in PostgreSQL.
package pgsession
