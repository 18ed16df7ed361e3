package e2e_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

// TestKeysRotate rotates the KEK of a running server whose keys live in an
// HSM, and switches a KMS-backed server to another KMS key, with the real
// binary: keys rotate, restart, read back.
func TestKeysRotate(t *testing.T) {
	requireE2E(t)
	t.Run("PKCS11", func(t *testing.T) {
		v := newVault(t, softHSMEnv(t)...)
		v.start()
		id := createPatient(t, v)
		out, err := v.keys("rotate")
		if err != nil {
			t.Fatalf("keys rotate: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "Done: every stored key is wrapped under pkcs11:phivault-kek-2") {
			t.Fatalf("keys rotate printed:\n%s", out)
		}
		out, err = v.keys("status")
		if err != nil {
			t.Fatalf("keys status: %v\n%s", err, out)
		}
		// Version 1 was destroyed in the token once nothing referred to it.
		if strings.Contains(string(out), "phivault-kek-1") || !strings.Contains(string(out), "pkcs11:phivault-kek-2") {
			t.Errorf("keys status after rotation:\n%s", out)
		}
		v.stop()
		v.start()
		readPatient(t, v, id)
	})
	t.Run("KMS", func(t *testing.T) {
		env, newKey := localKMS(t)
		arns := [2]string{newKey(), newKey()}
		v := newVault(t, env(arns[0])...)
		v.start()
		id := createPatient(t, v)
		// Nothing to rewrap: the answer explains KMS rotation.
		out, err := v.keys("rotate")
		if err == nil || !strings.Contains(string(out), "rotates this key's material itself") {
			t.Fatalf("keys rotate on an unchanged KMS key = %v:\n%s", err, out)
		}
		// Switch keys: configure the second key, restart, rotate.
		v.stop()
		v.extraEnv = append(v.extraEnv, "PHIVAULT_KMS_KEY_ID="+arns[1])
		v.start()
		out, err = v.keys("rotate")
		if err != nil || !strings.Contains(string(out), "Done: every stored key is wrapped under kms:"+arns[1]) {
			t.Fatalf("keys rotate after switching keys = %v:\n%s", err, out)
		}
		v.stop()
		v.start()
		readPatient(t, v, id)
		out, err = v.keys("status")
		// No stored key refers to the first key any more; phivault leaves
		// that key itself alone (deleting a KMS key is the operator's call).
		if err != nil || strings.Contains(string(out), arns[0]) || !strings.Contains(string(out), "kms:"+arns[1]) {
			t.Errorf("keys status = %v:\n%s", err, out)
		}
	})
}

// keys runs "phivault keys ARGS" against the server and returns its
// combined output.
func (v *vault) keys(args ...string) ([]byte, error) {
	v.t.Helper()
	args = append(append([]string{"keys"}, args...), "-url", v.url, "-cacert", v.cacert)
	cmd := exec.Command(binary, args...)
	cmd.Env = v.env("PHIVAULT_TOKEN=" + v.token)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

func createPatient(t *testing.T, v *vault) string {
	t.Helper()
	r := v.do(http.MethodPost, "/Patient", []byte(`{"resourceType":"Patient","name":[{"family":"Rotatetest"}]}`))
	if r.status != http.StatusCreated {
		t.Fatalf("create: HTTP %d: %s", r.status, r.body)
	}
	var created struct{ ID string }
	if err := json.Unmarshal(r.body, &created); err != nil {
		t.Fatal(err)
	}
	return created.ID
}

func readPatient(t *testing.T, v *vault, id string) {
	t.Helper()
	r := v.do(http.MethodGet, "/Patient/"+id, nil)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "Rotatetest") {
		t.Fatalf("read after restart: HTTP %d: %s", r.status, r.body)
	}
}
