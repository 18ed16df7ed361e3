package sqlite_test

import (
	"testing"

	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/internal/storetest"
)

func TestAuditIndex(t *testing.T) {
	storetest.RunAuditIndex(t, func(t *testing.T) auditlog.IndexStorage { return MustOpen(t) })
}
