//! Which continent a country is on, for databases that record only the
//! country (DB-IP's flat layout has no continent) and for checking the
//! continent codes a City database stores.
//!
//! A fixed table: countries change continent far less often than Meridian
//! is released, and a lookup must not allocate or fail.

/// The seven continent codes GeoIP databases use, and the only ones a
/// [`Location`](super::Location) carries.
const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

/// A stored continent code as one of [`CONTINENTS`], case-insensitive and
/// trimmed; `None` for anything else.
pub(super) fn continent_code(code: &str) -> Option<&'static str> {
    CONTINENTS
        .into_iter()
        .find(|known| known.eq_ignore_ascii_case(code.trim()))
}

/// The continent (`AF AN AS EU NA OC SA`) of an ISO 3166-1 alpha-2 country
/// code, case-insensitive; `None` for codes that name no country.
///
/// Covers every officially assigned code, plus `XK` (Kosovo), which GeoIP
/// vendors use. Transcontinental countries follow the usual GeoIP
/// convention: `RU` and `CY` are Europe; `TR`, `GE`, `AM`, `AZ` and `KZ`
/// are Asia; `EG` is Africa; `PA` and the Caribbean are North America;
/// `UM` is Oceania.
pub fn continent_of_country(country: &str) -> Option<&'static str> {
    let &[a, b] = country.as_bytes() else {
        return None;
    };
    let code = [a.to_ascii_uppercase(), b.to_ascii_uppercase()];
    Some(match &code {
        b"AO" | b"BF" | b"BI" | b"BJ" | b"BW" | b"CD" | b"CF" | b"CG" | b"CI" | b"CM" | b"CV"
        | b"DJ" | b"DZ" | b"EG" | b"EH" | b"ER" | b"ET" | b"GA" | b"GH" | b"GM" | b"GN" | b"GQ"
        | b"GW" | b"KE" | b"KM" | b"LR" | b"LS" | b"LY" | b"MA" | b"MG" | b"ML" | b"MR" | b"MU"
        | b"MW" | b"MZ" | b"NA" | b"NE" | b"NG" | b"RE" | b"RW" | b"SC" | b"SD" | b"SH" | b"SL"
        | b"SN" | b"SO" | b"SS" | b"ST" | b"SZ" | b"TD" | b"TG" | b"TN" | b"TZ" | b"UG" | b"YT"
        | b"ZA" | b"ZM" | b"ZW" => "AF",
        b"AQ" | b"BV" | b"GS" | b"HM" | b"TF" => "AN",
        b"AE" | b"AF" | b"AM" | b"AZ" | b"BD" | b"BH" | b"BN" | b"BT" | b"CC" | b"CN" | b"CX"
        | b"GE" | b"HK" | b"ID" | b"IL" | b"IN" | b"IO" | b"IQ" | b"IR" | b"JO" | b"JP" | b"KG"
        | b"KH" | b"KP" | b"KR" | b"KW" | b"KZ" | b"LA" | b"LB" | b"LK" | b"MM" | b"MN" | b"MO"
        | b"MV" | b"MY" | b"NP" | b"OM" | b"PH" | b"PK" | b"PS" | b"QA" | b"SA" | b"SG" | b"SY"
        | b"TH" | b"TJ" | b"TL" | b"TM" | b"TR" | b"TW" | b"UZ" | b"VN" | b"YE" => "AS",
        b"AD" | b"AL" | b"AT" | b"AX" | b"BA" | b"BE" | b"BG" | b"BY" | b"CH" | b"CY" | b"CZ"
        | b"DE" | b"DK" | b"EE" | b"ES" | b"FI" | b"FO" | b"FR" | b"GB" | b"GG" | b"GI" | b"GR"
        | b"HR" | b"HU" | b"IE" | b"IM" | b"IS" | b"IT" | b"JE" | b"LI" | b"LT" | b"LU" | b"LV"
        | b"MC" | b"MD" | b"ME" | b"MK" | b"MT" | b"NL" | b"NO" | b"PL" | b"PT" | b"RO" | b"RS"
        | b"RU" | b"SE" | b"SI" | b"SJ" | b"SK" | b"SM" | b"UA" | b"VA" | b"XK" => "EU",
        b"AG" | b"AI" | b"AW" | b"BB" | b"BL" | b"BM" | b"BQ" | b"BS" | b"BZ" | b"CA" | b"CR"
        | b"CU" | b"CW" | b"DM" | b"DO" | b"GD" | b"GL" | b"GP" | b"GT" | b"HN" | b"HT" | b"JM"
        | b"KN" | b"KY" | b"LC" | b"MF" | b"MQ" | b"MS" | b"MX" | b"NI" | b"PA" | b"PM" | b"PR"
        | b"SV" | b"SX" | b"TC" | b"TT" | b"US" | b"VC" | b"VG" | b"VI" => "NA",
        b"AS" | b"AU" | b"CK" | b"FJ" | b"FM" | b"GU" | b"KI" | b"MH" | b"MP" | b"NC" | b"NF"
        | b"NR" | b"NU" | b"NZ" | b"PF" | b"PG" | b"PN" | b"PW" | b"SB" | b"TK" | b"TO" | b"TV"
        | b"UM" | b"VU" | b"WF" | b"WS" => "OC",
        b"AR" | b"BO" | b"BR" | b"CL" | b"CO" | b"EC" | b"FK" | b"GF" | b"GY" | b"PE" | b"PY"
        | b"SR" | b"UY" | b"VE" => "SA",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_iso_country_has_a_continent() {
        const ISO_3166_1: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE \
            BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN \
            CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA \
            GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM \
            IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS \
            LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA \
            NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE \
            RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF \
            TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS \
            YE YT ZA ZM ZW";
        let codes: Vec<&str> = ISO_3166_1.split_whitespace().collect();
        assert_eq!(codes.len(), 249);
        let mut per_continent = std::collections::BTreeMap::new();
        for code in codes {
            let continent =
                continent_of_country(code).unwrap_or_else(|| panic!("{code} has no continent"));
            *per_continent.entry(continent).or_insert(0) += 1;
        }
        let expected = [
            ("AF", 58),
            ("AN", 5),
            ("AS", 53),
            ("EU", 52),
            ("NA", 41),
            ("OC", 26),
            ("SA", 14),
        ];
        assert_eq!(per_continent.into_iter().collect::<Vec<_>>(), expected);
        assert_eq!(continent_of_country("xk"), Some("EU"));
        assert_eq!(continent_of_country("us"), Some("NA"));
        for no_country in ["", "U", "USA", "ZZ", "EU", "AP", "é"] {
            assert_eq!(continent_of_country(no_country), None, "{no_country}");
        }
    }

    #[test]
    fn continent_codes_are_the_seven() {
        for code in CONTINENTS {
            assert_eq!(continent_code(code), Some(code));
            assert_eq!(
                continent_code(&format!(" {} ", code.to_ascii_lowercase())),
                Some(code)
            );
        }
        for not_one in ["", "E", "EUR", "AP", "ZZ", "--"] {
            assert_eq!(continent_code(not_one), None, "{not_one}");
        }
    }
}
