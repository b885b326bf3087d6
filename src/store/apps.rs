//! Apps: the prepaid deployments. Their lifetime (`start_time`, `end_time`) moves only when a
//! payment is credited, inside the crediting transaction.

use std::str::FromStr;

use sqlx::Row;
use sqlx::any::{AnyExecutor, AnyRow};
use uuid::Uuid;

use super::{StoreError, StoreResult, unix_now};
use crate::money::PayMethod;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppStatus {
    PendingPayment,
    Active,
    /// Had run, and the payment that activated it was taken back by a reorg.
    Suspended,
    Expired,
    Cancelled,
}

impl AppStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AppStatus::PendingPayment => "pending_payment",
            AppStatus::Active => "active",
            AppStatus::Suspended => "suspended",
            AppStatus::Expired => "expired",
            AppStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> StoreResult<Self> {
        Ok(match s {
            "pending_payment" => AppStatus::PendingPayment,
            "active" => AppStatus::Active,
            "suspended" => AppStatus::Suspended,
            "expired" => AppStatus::Expired,
            "cancelled" => AppStatus::Cancelled,
            other => return Err(StoreError::Corrupt(format!("app status {other:?}"))),
        })
    }
}

/// The deployment as the client describes it in CreateApp.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct AppSpec {
    pub name: String,
    pub cluster_id: String,
    pub namespace_name: String,
    pub chart_name: String,
    pub chart_repo: String,
    pub chart_ver: String,
    pub chart_desc: String,
    pub chart_icon_url: String,
    pub app_version: String,
    pub instance_type: String,
    pub enterprise: bool,
    /// The `custom_values` array as JSON text.
    pub custom_values: String,
    pub cpu_limit: i64,
    pub mem_limit: i64,
    pub storage_limit: i64,
}

#[derive(Debug, Clone)]
pub struct App {
    pub app_id: String,
    pub team_id: String,
    pub spec: AppSpec,
    pub pay_method: PayMethod,
    pub status: AppStatus,
    pub start_time: Option<i64>,
    pub end_time: Option<i64>,
    pub created_at: i64,
}

const COLUMNS: &str = "app_id, team_id, name, cluster_id, namespace_name, chart_name, chart_repo, chart_ver, \
    chart_desc, chart_icon_url, app_version, instance_type, enterprise, custom_values, cpu_limit, mem_limit, \
    storage_limit, pay_method, status, start_time, end_time, created_at";

pub async fn insert_app<'e>(
    db: impl AnyExecutor<'e>,
    team_id: &str,
    spec: &AppSpec,
    pay_method: PayMethod,
) -> StoreResult<App> {
    let now = unix_now();
    let app = App {
        app_id: Uuid::new_v4().to_string(),
        team_id: team_id.to_string(),
        spec: spec.clone(),
        pay_method,
        status: AppStatus::PendingPayment,
        start_time: None,
        end_time: None,
        created_at: now,
    };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO apps ({COLUMNS}, updated_at) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, NULL, NULL, $20, $20)"
    )))
    .bind(&app.app_id)
    .bind(team_id)
    .bind(&spec.name)
    .bind(&spec.cluster_id)
    .bind(&spec.namespace_name)
    .bind(&spec.chart_name)
    .bind(&spec.chart_repo)
    .bind(&spec.chart_ver)
    .bind(&spec.chart_desc)
    .bind(&spec.chart_icon_url)
    .bind(&spec.app_version)
    .bind(&spec.instance_type)
    .bind(spec.enterprise as i64)
    .bind(&spec.custom_values)
    .bind(spec.cpu_limit)
    .bind(spec.mem_limit)
    .bind(spec.storage_limit)
    .bind(pay_method.as_str())
    .bind(app.status.as_str())
    .bind(now)
    .execute(db)
    .await?;
    Ok(app)
}

/// The app if it belongs to `team_id`; another team's app is "not found".
pub async fn get_app<'e>(db: impl AnyExecutor<'e>, team_id: &str, app_id: &str) -> StoreResult<Option<App>> {
    let row =
        sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM apps WHERE app_id = $1 AND team_id = $2")))
            .bind(app_id)
            .bind(team_id)
            .fetch_optional(db)
            .await?;
    row.map(|r| from_row(&r)).transpose()
}

/// Sets the paid lifetime and the status (activation, extension, expiry).
pub async fn set_lifetime<'e>(
    db: impl AnyExecutor<'e>,
    app_id: &str,
    status: AppStatus,
    start_time: Option<i64>,
    end_time: Option<i64>,
) -> StoreResult<()> {
    sqlx::query("UPDATE apps SET status = $1, start_time = $2, end_time = $3, updated_at = $4 WHERE app_id = $5")
        .bind(status.as_str())
        .bind(start_time)
        .bind(end_time)
        .bind(unix_now())
        .bind(app_id)
        .execute(db)
        .await?;
    Ok(())
}

fn from_row(r: &AnyRow) -> StoreResult<App> {
    let pay_method: String = r.try_get("pay_method")?;
    let status: String = r.try_get("status")?;
    Ok(App {
        app_id: r.try_get("app_id")?,
        team_id: r.try_get("team_id")?,
        spec: AppSpec {
            name: r.try_get("name")?,
            cluster_id: r.try_get("cluster_id")?,
            namespace_name: r.try_get("namespace_name")?,
            chart_name: r.try_get("chart_name")?,
            chart_repo: r.try_get("chart_repo")?,
            chart_ver: r.try_get("chart_ver")?,
            chart_desc: r.try_get("chart_desc")?,
            chart_icon_url: r.try_get("chart_icon_url")?,
            app_version: r.try_get("app_version")?,
            instance_type: r.try_get("instance_type")?,
            enterprise: r.try_get::<i64, _>("enterprise")? != 0,
            custom_values: r.try_get("custom_values")?,
            cpu_limit: r.try_get("cpu_limit")?,
            mem_limit: r.try_get("mem_limit")?,
            storage_limit: r.try_get("storage_limit")?,
        },
        pay_method: PayMethod::from_str(&pay_method).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        status: AppStatus::parse(&status)?,
        start_time: r.try_get("start_time")?,
        end_time: r.try_get("end_time")?,
        created_at: r.try_get("created_at")?,
    })
}

/// An app that never activated is cancelled (its order expired unpaid).
pub async fn cancel_pending<'e>(db: impl AnyExecutor<'e>, app_id: &str, now: i64) -> StoreResult<()> {
    sqlx::query(
        "UPDATE apps SET status = 'cancelled', updated_at = $1 WHERE app_id = $2 AND status = 'pending_payment'",
    )
    .bind(now)
    .bind(app_id)
    .execute(db)
    .await?;
    Ok(())
}
