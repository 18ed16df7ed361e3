package detect_test

import (
	"testing"

	"github.com/phivault/phivault/detect"
	"github.com/phivault/phivault/detect/storetest"
)

func TestMemStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) detect.Store { return detect.NewMemStore() })
}
