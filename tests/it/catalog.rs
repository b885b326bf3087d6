//! Goods specifications with the seed 000 bodies: update-sp, then the detail with the three
//! prices and pictures; bad cells are 422 in the seed's envelope; writes need the admin token.

use serde_json::{Value, json};

use crate::support::app::{Options, spawn_app};

use crate::support::app::ADMIN_TOKEN as ADMIN;

fn seed_update() -> Value {
    json!({
        "goods_id": 1,
        "main_specification_name": "颜色1",
        "second_specification_name": "鞋码1",
        "specification": [
            {"main_specification": "蓝色", "second_specification": "37", "purchasing_cost": 23},
            {"main_specification": "蓝色", "second_specification": "38", "purchasing_cost": 24},
            {"main_specification": "蓝色", "second_specification": "39", "purchasing_cost": 21},
            {"main_specification": "绿色", "second_specification": "37", "purchasing_cost": 23},
            {"main_specification": "绿色", "second_specification": "42", "purchasing_cost": 21}
        ],
        "pics": [
            {"main_specification": "蓝色", "image_url": "https://www.baidu.com2"},
            {"main_specification": "绿色", "image_url": "https://www.baidu.com3"}
        ]
    })
}

#[tokio::test]
async fn the_seed_goods_specification_round_trips_with_its_prices_and_pictures() {
    let app = spawn_app(Options::default()).await;
    let post = |path: &str, token: Option<&str>, body: Value| {
        let mut req = app.http.post(format!("{}{path}", app.base)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, saved) = post("/goods-specification/update-sp", Some(ADMIN), seed_update()).await;
    assert_eq!((status, &saved), (200, &json!({"code": 1, "message": "success", "info": ""})));

    for detail in [post("/goods-specifications?goods_id=1", None, json!({})).await, {
        let r = app.http.get(format!("{}/goods-specifications?goods_id=1", app.base)).send().await.unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    }] {
        let (status, body) = detail;
        assert_eq!(status, 200, "{body}");
        assert_eq!((body["code"].as_i64(), body["message"].as_str()), (Some(1), Some("success")));
        let info = &body["info"];
        assert_eq!(info["goods_id"], "1");
        assert_eq!(info["main_specification_name"], "颜色1");
        let cells = info["specification"].as_array().unwrap();
        assert_eq!(cells.len(), 5, "every cell comes back");
        assert_eq!(cells[0]["purchasing_cost"], "23.00");
        assert_eq!(cells[0]["original_cost"], "33.41");
        assert_eq!(cells[0]["after_discount_cost"], "26.06");
        assert_eq!(cells[1]["original_cost"], "34.86");
        assert_eq!(cells[1]["after_discount_cost"], "27.19");
        assert_eq!(cells[2]["after_discount_cost"], "23.79");
        assert_eq!(cells[0]["image_url"], "https://www.baidu.com2", "each cell shows its main specification's picture");
        assert_eq!(cells[4]["image_url"], "https://www.baidu.com3");
        let pics = info["pics"].as_array().unwrap();
        assert_eq!(pics.len(), 2);
        // In the order saved (蓝色 first), not by name (绿色 sorts first).
        assert_eq!(
            (pics[0]["main_specification"].as_str(), pics[1]["main_specification"].as_str()),
            (Some("蓝色"), Some("绿色"))
        );
    }

    let mut duplicate = seed_update();
    duplicate["specification"][1]["second_specification"] = json!("37");
    let (status, err) = post("/goods-specification/update-sp", Some(ADMIN), duplicate).await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["code"], 0);
    assert!(err["message"].as_str().unwrap().contains("specification[1]"), "{err}");

    let mut negative = seed_update();
    negative["specification"][0]["purchasing_cost"] = json!(-1);
    assert_eq!(post("/goods-specification/update-sp", Some(ADMIN), negative).await.0, 422);
    let mut unpictured = seed_update();
    unpictured["pics"].as_array_mut().unwrap().pop();
    assert_eq!(post("/goods-specification/update-sp", Some(ADMIN), unpictured).await.0, 422, "绿色 has no picture");
    let mut nameless = seed_update();
    nameless["main_specification_name"] = json!("");
    assert_eq!(post("/goods-specification/update-sp", Some(ADMIN), nameless).await.0, 422);

    let (status, err) = post("/goods-specification/update-sp", None, seed_update()).await;
    assert_eq!((status, err["code"].as_i64()), (401, Some(0)), "writes need the admin token");
    let (status, _) = post("/goods-specifications?goods_id=2", None, json!({})).await;
    assert_eq!(status, 404);
    app.stop().await;
}
