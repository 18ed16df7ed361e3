package incident_test

import (
	"testing"

	"github.com/phivault/phivault/incident"
	"github.com/phivault/phivault/incident/storetest"
)

func TestMemStore(t *testing.T) {
	storetest.Run(t, func(*testing.T) incident.Store { return incident.NewMemStore() })
}
