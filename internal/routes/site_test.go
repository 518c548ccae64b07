package routes

import (
	"reflect"
	"testing"

	"github.com/stretchr/testify/assert"
)

// Each route group gets only the parts of a site it needs: a new part
// given to a group should be a decision, made here, not an accident of a
// wider receiver.
func TestRouteGroupsGetOnlyTheirParts(t *testing.T) {
	for group, want := range map[reflect.Type][]string{
		reflect.TypeFor[signInRoutes]():  {"base", "*cookies", "*responder", "*sessions", "*attempts", "*factors", "*providers", "*links", "store", "memory", "metrics"},
		reflect.TypeFor[accountRoutes](): {"base", "*cookies", "*responder", "*sessions", "*attempts", "*factors", "*providers", "*links", "store", "memory"},
		reflect.TypeFor[links]():         {"base", "store", "shared"},
		reflect.TypeFor[providers]():     {"base", "*cookies", "store", "list"},
		reflect.TypeFor[adminRoutes]():   {"base", "*responder", "*sessions", "*attempts", "store", "memory", "mail"},
		reflect.TypeFor[resetRoutes]():   {"base", "*responder", "signIn", "store", "memory", "shared", "links"},
		reflect.TypeFor[responder]():     {"base", "*cookies", "memory"},
		reflect.TypeFor[cookies]():       {"base"},
		reflect.TypeFor[base]():          {"*Config", "logger"},

		// The admin page does what the admin API does, through the same operations.
		reflect.TypeFor[adminPageRoutes](): {"base", "*responder", "*sessions", "*adminRoutes", "store"},
	} {
		var got []string
		for f := range group.Fields() {
			name := f.Name
			if f.Anonymous {
				name = f.Type.String()[len("routes."):]
				if f.Type.Kind() == reflect.Pointer {
					name = "*" + f.Type.Elem().Name()
				}
			}
			got = append(got, name)
		}
		assert.Equal(t, want, got, "%s", group.Name())
	}
}
