package postgres_test

import (
	"testing"

	"github.com/phivault/phivault/auditlog"
	"github.com/phivault/phivault/internal/storetest"
	"github.com/phivault/phivault/postgres"
)

var _ auditlog.Storage = (*postgres.DB)(nil)

func TestAuditStorage(t *testing.T) {
	storetest.RunAudit(t, func(t *testing.T) auditlog.Storage { return MustOpen(t) })
}
