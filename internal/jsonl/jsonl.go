// Package jsonl keeps a history file of JSON lines readable by its owner
// only: the drills' reports and the restore drills' reports.
//
// A file is appended to one value at a time and read whole. Append is safe
// for use by one process at a time.
package jsonl

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Append adds v to the file path as one JSON line. The file is made with
// mode 0600 and its folder with mode 0700 if missing.
func Append(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Read returns the values in the file path, oldest first; none if there
// is no file. A line that is not a T is an error naming its line number.
func Read[T any](path string) ([]*T, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []*T
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for n := 1; sc.Scan(); n++ {
		v := new(T)
		if err := json.Unmarshal(sc.Bytes(), v); err != nil {
			return nil, fmt.Errorf("%s:%d: not a report", path, n)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}
