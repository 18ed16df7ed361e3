package report_test

import (
	"testing"

	"github.com/phivault/phivault/incident/report"
	"github.com/phivault/phivault/incident/report/storetest"
)

func TestMemStore(t *testing.T) {
	storetest.Run(t, func(*testing.T) report.Store { return report.NewMemStore() })
}
