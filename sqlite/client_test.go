package sqlite_test

import (
	"testing"

	"github.com/phivault/phivault"
	"github.com/phivault/phivault/internal/storetest"
)

func TestClientStore(t *testing.T) {
	storetest.RunClientStore(t, func(t *testing.T) phivault.ClientStore { return MustOpen(t) })
}
