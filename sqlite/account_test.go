package sqlite_test

import (
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/internal/storetest"
)

func TestAccountStore(t *testing.T) {
	storetest.RunAccountStore(t, func(t *testing.T) phivault.AccountStore { return MustOpen(t) })
}
