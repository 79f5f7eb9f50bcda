package worker

// numSlots is the number of hash slots in a Redis Cluster.
const numSlots = 16384

// keySlot returns the cluster hash slot of prefix+key, honouring hash tags
// ({...}) as Redis does, without building the key.
func keySlot(prefix, key string) uint16 {
	// Hash tags are rare, so the common case scans once without copying.
	if open := indexByte2(prefix, key, '{'); open >= 0 {
		if end := indexByte2From(prefix, key, '}', open+1); end > open+1 {
			return crc16Range(prefix, key, open+1, end) % numSlots
		}
	}
	return crc16Range(prefix, key, 0, len(prefix)+len(key)) % numSlots
}

// at returns byte i of the virtual string prefix+key.
func at(prefix, key string, i int) byte {
	if i < len(prefix) {
		return prefix[i]
	}
	return key[i-len(prefix)]
}

func indexByte2(prefix, key string, c byte) int { return indexByte2From(prefix, key, c, 0) }

func indexByte2From(prefix, key string, c byte, from int) int {
	for i, n := from, len(prefix)+len(key); i < n; i++ {
		if at(prefix, key, i) == c {
			return i
		}
	}
	return -1
}

func crc16Range(prefix, key string, from, to int) uint16 {
	var crc uint16
	for i := from; i < to; i++ {
		crc = crc<<8 ^ crc16Table[byte(crc>>8)^at(prefix, key, i)]
	}
	return crc
}

// crc16Table is CRC16-CCITT (XMODEM), the checksum Redis Cluster uses.
var crc16Table = func() (t [256]uint16) {
	for i := range t {
		crc := uint16(i) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		t[i] = crc
	}
	return t
}()
