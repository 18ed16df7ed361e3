package main

import "testing"

func TestResidenceState(t *testing.T) {
	for body, want := range map[string]string{
		`{"address":[{"use":"home","state":"ma"}]}`: "MA",
		`{"address":[{"use":"old","state":"NY"},{"use":"home","state":"NH","period":{"end":"2020-01-01"}},{"use":"home","state":"VT"}]}`: "VT",
		`{"address":[{"use":"old","state":"NY"},{"use":"work","state":"CT"}]}`:                                                           "CT",
		`{"address":[{"city":"Boston"}]}`: "",
		`{}`:                              "",
		`not json`:                        "",
	} {
		if got := residenceState([]byte(body)); got != want {
			t.Errorf("residenceState(%s) = %q, want %q", body, got, want)
		}
	}
}
