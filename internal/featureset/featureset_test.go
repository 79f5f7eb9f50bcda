package featureset

import "testing"

func TestValueAndCheck(t *testing.T) {
	s := Set{Entities: 10, Features: 3, ValueSize: 12}
	if v := s.Value(1, 2); v == nil || len(*v) != 12 || (*v)[:5] != "v1-2-" {
		t.Fatalf("Value(1, 2) = %v", v)
	}
	if s.Value(3, 4) != nil || s.Value(10, 0) != nil || s.Value(7, 0) != nil {
		t.Fatal("absent values are not nil")
	}
	good := [][]*string{{s.Value(1, 0), s.Value(1, 1)}, {s.Value(11, 0), s.Value(11, 1)}}
	if err := s.Check([]int{1, 11}, []int{0, 1}, good); err != nil {
		t.Fatal(err)
	}
	bad := [][]*string{{s.Value(1, 1), s.Value(1, 0)}, {nil, nil}}
	if err := s.Check([]int{1, 11}, []int{0, 1}, bad); err == nil {
		t.Fatal("swapped values pass the check")
	}
	if err := s.Check([]int{1}, []int{0, 1}, good); err == nil {
		t.Fatal("extra row passes the check")
	}
}
