package api

import (
	"reflect"
	"testing"

	"github.com/synchub/synchub/hub/syncproto"
)

// TestDecodePush_MatchesDecodeStrict: the fast push decoder gives the request, or an
// error, exactly where encoding/json does, invalid JSON inside a change's objects and
// invalid UTF-8 included.
func TestDecodePush_MatchesDecodeStrict(t *testing.T) {
	bodies := []string{
		`{"edge":"e1","batch_id":"b1","after":"b0","sent_at":17,"changes":[{"id":1,"t":"public.orders","op":"i","key":{"id":1},"row":{"id":1,"note":"a\u00e9\"x"},"base_version":0,"hlc":"0001-00000-e1"}]}`,
		`{"edge":"e1","batch_id":"b1","changes":[{"id":2,"t":"public.orders","op":"u","key":{"id":[1,{"a":null}]},"row":{"id":2},"base":{"id":2,"n":1e5},"base_version":9}]}`,
		`{"edge":"e1","batch_id":"b1","changes":[{"id":1,"key":{"id":1,}}]}`,                                       // invalid inside a raw object
		`{"edge":"e1","batch_id":"b1","changes":[{"id":1,"key":{"id":01}}]}`,                                       // leading zero
		"{\"edge\":\"e\xff1\",\"batch_id\":\"b1\",\"changes\":[]}",                                                 // invalid UTF-8
		"{\"edge\":\"e1\",\"batch_id\":\"b1\",\"changes\":[{\"t\":\"t\xc3\"}]}",                                    // truncated UTF-8 sequence
		`{"edge":"e1","batch_id":"b1","changes":[]} x`,                                                             // data after the value
		`{"edge":"e1","batch_id":"b1","sent_at":"soon","changes":[]}`,                                              // wrong type
		`{"edge":"e1","batch_id":"b1","changes":[{"id":1.5}]}`,                                                     // fraction for an int
		`{"edge":"e1","unknown":{"x":[1,2]},"changes":null}`,                                                       // unknown member
		`{"edge":"e1","batch_id":"b1","sent_at":9223372036854775807,"changes":[]}`,                                 // the largest int64
		`{"edge":"e1","batch_id":"b1","sent_at":9223372036854775808,"changes":[]}`,                                 // overflows int64
		`{"edge":"e1","batch_id":"b1","changes":[{"id":1,"base_version":-9223372036854775809}]}`,                   // overflows int64
		`{"edge":"e1","batch_id":"b1","changes":[{"id":1,"key":{"id":"92233720368547758080"},"row":{"n":1e400}}]}`, // long digits in a string, a huge float in a row
		`{"edge":"e1\"9223372036854775808","batch_id":"b1","changes":[]}`,                                          // digits after an escaped quote
		`[]`, `null`, ``, `   `, `{`, `{"edge":"e1"`,
	}
	for _, b := range bodies {
		var fast, std syncproto.PushRequest
		ferr, serr := decodePush([]byte(b), &fast), decodeStrict([]byte(b), &std)
		if (ferr == nil) != (serr == nil) {
			t.Errorf("%q: decodePush error %v, decodeStrict error %v", b, ferr, serr)
			continue
		}
		if ferr == nil && !reflect.DeepEqual(fast, std) {
			t.Errorf("%q: decodePush gave %+v, decodeStrict %+v", b, fast, std)
		}
	}
}
