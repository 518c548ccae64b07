package engine

import "github.com/pgsession/caddy-pgsession/store"

// method is how a session was signed in (store.Method…), one byte a
// session: the names are the same few strings for every session.
type method uint8

const (
	methodNone method = iota // an API token's: no sign-in stands behind it
	methodPassword
	methodPasswordTOTP
	methodPasswordRecoveryCode
	methodPasskey
	methodProvider
	methodProviderMFA
	methodProviderTOTP
	methodProviderRecoveryCode
)

// methodNames are the methods' names, and methodValues the same boxed
// once, so that setting a placeholder to one allocates nothing.
var (
	methodNames = [...]string{methodNone: "", methodPassword: store.MethodPassword,
		methodPasswordTOTP: store.MethodPasswordTOTP, methodPasswordRecoveryCode: store.MethodPasswordRecoveryCode,
		methodPasskey: store.MethodPasskey, methodProvider: store.MethodProvider, methodProviderMFA: store.MethodProviderMFA,
		methodProviderTOTP: store.MethodProviderTOTP, methodProviderRecoveryCode: store.MethodProviderRecoveryCode}
	methodValues = func() (v [len(methodNames)]any) {
		for i, name := range methodNames {
			v[i] = name
		}
		return v
	}()
	// methodSecondFactor is store.MethodHasSecondFactor of each method,
	// read once, so the store says which methods count in one place.
	methodSecondFactor = func() (v [len(methodNames)]bool) {
		for i, name := range methodNames {
			v[i] = store.MethodHasSecondFactor(name)
		}
		return v
	}()
)

// methodOf is the method of a name the store read; a name it does not
// know is none, which no rule takes for a second factor.
func methodOf(name string) method {
	for i, n := range methodNames {
		if n == name {
			return method(i)
		}
	}
	return methodNone
}
