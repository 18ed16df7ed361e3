// Command makeprebinding writes a key file and unbound (format-1) wraps as
// phivault made them before wraps were bound to key names (commit
// 018680bf6b6d3e61cef770cc3edad1543304b4b7, the parent of 19d2bb4). Run it
// in a checkout of that commit:
//
//	go run ./cmd/makeprebinding DIR
//
// It writes DIR/prebinding-keyring.age (passphrase "correct horse battery
// staple", scrypt work factor 2^10) and DIR/prebinding.json: the KEK, so
// tests can make more format-1 wraps, and four wraps made by that
// version's FileKeyring.WrapKey. The files next to this one were made so;
// vaulttest.PreBindingKeyring serves them to tests.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log"
	"os"
	"path/filepath"

	"github.com/phivault/phivault/keyring"
)

func main() {
	dir := os.Args[1]
	pass := []byte("correct horse battery staple")
	opts := keyring.FileOptions{WorkFactor: 10}
	kek := make([]byte, keyring.KEKSize)
	rand.Read(kek)
	path := filepath.Join(dir, "prebinding-keyring.age")
	create := opts
	create.Rand = bytes.NewReader(kek)
	if err := keyring.CreateFile(path, pass, create); err != nil {
		log.Fatal(err)
	}
	k, err := keyring.OpenFile(path, pass, opts)
	if err != nil {
		log.Fatal(err)
	}
	type wrap struct {
		Name    string `json:"name"`
		KEKID   string `json:"kek_id"`
		DEK     string `json:"dek"`
		Wrapped string `json:"wrapped"`
	}
	out := struct {
		Commit     string `json:"commit"`
		Passphrase string `json:"passphrase"`
		KEKID      string `json:"kek_id"`
		KEK        string `json:"kek"`
		Wraps      []wrap `json:"wraps"`
	}{Commit: "018680bf6b6d3e61cef770cc3edad1543304b4b7", Passphrase: string(pass), KEKID: string(k.Current()), KEK: hex.EncodeToString(kek)}
	for _, name := range []string{"patient/a", "patient/b", "shared", "index"} {
		dek := make([]byte, 32)
		rand.Read(dek)
		id, wrapped, err := k.WrapKey(context.Background(), dek)
		if err != nil {
			log.Fatal(err)
		}
		out.Wraps = append(out.Wraps, wrap{Name: name, KEKID: string(id), DEK: hex.EncodeToString(dek), Wrapped: hex.EncodeToString(wrapped)})
	}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "prebinding.json"), append(data, '\n'), 0o644); err != nil {
		log.Fatal(err)
	}
}
