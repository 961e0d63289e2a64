//! The operator's console reads as a finished one in Chinese: a card for each area with what it
//! is for, stored values shown by their labels (no raw `everyone`), and a token called a token
//! (權杖), not a certificate (憑證).

use crate::harness::*;
use crate::portal::{account_id, signed_in};

const PW: &str = "Personnel-Office-2026";

#[tokio::test]
async fn the_operator_console_has_a_card_per_area_and_labels_for_every_value() {
    let mut idp = Idp::new();
    idp.import_register();
    idp.cli_ok(&["clients", "create", "--name", "MyData", "--redirect-uri", "https://mydata.example.gov.tw/cb"]);
    idp.cli_ok(&[
        "clients",
        "create",
        "--name",
        "WebHR",
        "--redirect-uri",
        "https://webhr.example.gov.tw/cb",
        "--audience",
        "hr-staff",
    ]);
    idp.cli_ok(&[
        "clients",
        "create",
        "--name",
        "機關系統",
        "--redirect-uri",
        "https://agency.example.gov.tw/cb",
        "--audience",
        "agency:A21000000I",
    ]);
    idp.cli_ok(&["users", "grant", "--national-id", MEIHUA, "--role", "operator"]);
    idp.start().await;
    idp.activate(MEIHUA, "meihua.lee", PW).await;
    assert!(!account_id(&idp, "李美華").is_empty());
    let b = signed_in(&idp, "meihua.lee", PW).await;

    let index = b.get("/admin").await;
    assert_eq!(index.status, 200, "{}", index.body);
    assert_eq!(index.body.matches("<li><h2><a href=\"/admin/").count(), 6, "one card per area: {}", index.body);
    assert!(index.body.contains("依事件、結果、帳號、應用系統及日期查詢稽核紀錄"), "each card says what it is for");
    assert!(index.body.contains("aria-current=\"page\">系統管理</a>"), "the navigation marks 系統管理");

    let list = b.get("/admin/clients").await;
    assert_eq!(list.status, 200);
    for label in ["所有公務人員", "僅人事人員", "僅下列機關人員：A21000000I"] {
        assert!(list.body.contains(&format!("<td>{label}</td>")), "{label}: {}", list.body);
    }
    for raw in ["<td>everyone</td>", "<td>hr-staff</td>", "agency:"] {
        assert!(!list.body.contains(raw), "no raw value {raw} on a Chinese page");
    }

    let tokens = b.get("/admin/registration-tokens").await;
    assert!(tokens.body.contains("動態註冊權杖") && tokens.body.contains("初始存取權杖"), "{}", tokens.body);
    for page in [&index, &list, &tokens] {
        assert!(!page.body.contains("註冊憑證") && !page.body.contains("存取憑證"), "a token is not a certificate");
    }
}
