package postgres_test

import (
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/internal/storetest"
)

func TestAccountStore(t *testing.T) {
	testURL(t)
	storetest.RunAccountStore(t, func(t *testing.T) phivault.AccountStore { return MustOpen(t) })
}

func TestClientStore(t *testing.T) {
	testURL(t)
	storetest.RunClientStore(t, func(t *testing.T) phivault.ClientStore { return MustOpen(t) })
}
