package identity_test

import (
	"strings"
	"testing"

	"github.com/phivault/phivault/identity"
)

// testHasher uses tiny parameters so tests stay fast.
func testHasher() *identity.Hasher {
	return &identity.Hasher{Params: identity.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}}
}

func TestHashVerify(t *testing.T) {
	h := testHasher()
	enc, err := h.Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("hash %q is not PHC argon2id with the given parameters", enc)
	}
	if ok, rehash, err := h.Verify(enc, "correct horse battery staple"); err != nil || !ok || rehash {
		t.Errorf("Verify(right) = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
	if ok, _, err := h.Verify(enc, "correct horse battery stapl"); err != nil || ok {
		t.Errorf("Verify(wrong) = %v, %v; want false, nil", ok, err)
	}
	enc2, _ := h.Hash("correct horse battery staple")
	if enc2 == enc {
		t.Error("two hashes of one password are equal; salt not random")
	}
}

func TestVerifyRehash(t *testing.T) {
	old := testHasher()
	enc, err := old.Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	h := testHasher()
	h.Params.Time = 2
	if ok, rehash, err := h.Verify(enc, "correct horse battery staple"); err != nil || !ok || !rehash {
		t.Errorf("Verify with changed params = %v, %v, %v; want true, true, nil", ok, rehash, err)
	}
	if ok, rehash, _ := h.Verify(enc, "wrong password!!"); ok || rehash {
		t.Errorf("Verify(wrong) with changed params = %v, %v; want false, false", ok, rehash)
	}
}

func TestVerifyMalformed(t *testing.T) {
	h := testHasher()
	enc, _ := h.Hash("correct horse battery staple")
	for _, bad := range []string{
		"",
		"plaintext",
		strings.Replace(enc, "argon2id", "argon2i", 1),
		strings.Replace(enc, "v=19", "v=16", 1),
		strings.Replace(enc, "m=64", "m=0", 1),
		strings.Replace(enc, "m=64,t=1", "m=64,t=1,x=2", 1),
		enc[:strings.LastIndex(enc, "$")],
		enc + "!",
	} {
		if _, _, err := h.Verify(bad, "correct horse battery staple"); err == nil {
			t.Errorf("Verify(%q) succeeded; want an error", bad)
		}
	}
}

func TestDefaultParams(t *testing.T) {
	p := identity.DefaultParams()
	if p.Memory != 64*1024 || p.Time != 1 || p.Threads != 2 {
		t.Errorf("DefaultParams() = %+v", p)
	}
}
