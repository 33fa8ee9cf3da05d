//! # custos — the binary
//!
//! Every command that touches data takes `--data-dir`, `--database-url`, `--vault-url`
//! and `--master-key-file` the same way; each can also come from a `CUSTOS_*` variable or
//! `custos.toml` (flags win over variables, variables over the file).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use custos_app::config::FileConfig;
use custos_app::kernel::read_policy;
use custos_app::{Config, Kernel};
use custos_core::SystemClock;
use custos_policy::{render, Lang, Policy};
use custos_store::{ledger, policy_versions};

#[derive(Parser)]
#[command(
    name = "custos",
    version,
    about = "Custos: a product-discovery backend whose privacy policy is code"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
    /// Check, publish, compare and render the privacy declaration.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Inspect the consent ledger.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Import items into the product catalog.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// Check that an erased subject is gone from every store.
    #[command(subcommand)]
    Erasure(ErasureCommand),
    /// Run the background jobs: the retention purge and due account cancellations.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Manage staff accounts (create the first admin).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Verify or export the tamper-evident audit log of staff and operator actions.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The policy's lifecycle: discontinue a feature or the service, change of controller,
    /// sink regions.
    #[command(subcommand)]
    Ops(OpsCommand),
    /// Print a new random master key (base64) for CUSTOS_MASTER_KEY or a key file.
    Keygen,
    /// Print the OpenAPI 3.1 document of the HTTP API.
    Openapi,
}

#[derive(Args, Clone, Default)]
struct StorageArgs {
    /// Data directory (SQLite database, key vault, generated master key).
    #[arg(long, env = "CUSTOS_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// `sqlite://PATH` or `postgres://USER@HOST/DB` [default: SQLite in the data directory]
    #[arg(long, env = "CUSTOS_DATABASE_URL", global = true)]
    database_url: Option<String>,
    /// Database for wrapped subject keys [default: keys.db in the data directory for
    /// SQLite; the data database for PostgreSQL]
    #[arg(long, env = "CUSTOS_VAULT_URL", global = true)]
    vault_url: Option<String>,
    /// File holding the base64 master key (or set CUSTOS_MASTER_KEY).
    #[arg(long, env = "CUSTOS_MASTER_KEY_FILE", global = true)]
    master_key_file: Option<PathBuf>,
    /// Configuration file.
    #[arg(
        long,
        env = "CUSTOS_CONFIG",
        default_value = "custos.toml",
        global = true
    )]
    config: PathBuf,
}

impl StorageArgs {
    fn file(&self) -> anyhow::Result<FileConfig> {
        let explicit = self.config != std::path::Path::new("custos.toml");
        FileConfig::load(&self.config, explicit)
    }
    fn resolve(&self, policy: Option<PathBuf>) -> anyhow::Result<Config> {
        let f = self.file()?;
        let mut cfg = Config::resolve(
            self.data_dir.clone().or(f.data_dir),
            self.database_url.clone().or(f.database_url),
            self.vault_url.clone().or(f.vault_url),
            self.master_key_file.clone().or(f.master_key_file),
            policy.or(f.policy),
        )?;
        cfg.identity = f.identity;
        cfg.catalog = f.catalog;
        cfg.signals = f.signals;
        cfg.rights = f.rights;
        cfg.jobs = f.jobs;
        cfg.ops = f.ops;
        cfg.residency = f.residency;
        cfg.web = f.web;
        Ok(cfg)
    }
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "CUSTOS_LISTEN")]
    listen: Option<SocketAddr>,
    /// Start with demonstration data (the bundled declaration is published on first run).
    #[arg(long, env = "CUSTOS_DEMO")]
    demo: bool,
    /// Declaration to publish when the database has none yet [default: the bundled one]
    #[arg(long, env = "CUSTOS_POLICY")]
    policy: Option<PathBuf>,
    /// State-changing requests per second per client address (0 = no limit) [default: 20]
    #[arg(long, env = "CUSTOS_WRITE_RATE_LIMIT")]
    write_rate_limit: Option<u32>,
    /// Log format: json (default) or text.
    #[arg(long, env = "CUSTOS_LOG_FORMAT")]
    log_format: Option<LogFormat>,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum LogFormat {
    Json,
    Text,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Validate a declaration; exit 1 naming every offending entry.
    Check { file: PathBuf },
    /// Publish a declaration as a new immutable version (no-op if already published).
    Publish {
        /// [default: policy/custos-app.toml]
        file: Option<PathBuf>,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// List published versions.
    Versions {
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Show, per purpose, what changed between two versions and what needs fresh consent.
    /// A and B are declaration files or published version hashes (or unique prefixes).
    Diff {
        a: String,
        b: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Export the records of processing with each purpose's impact assessment (L10).
    Records {
        /// [default: policy/custos-app.toml]
        file: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "json")]
        format: RecordsFormat,
        /// Language of the HTML export.
        #[arg(long, default_value = "zh")]
        lang: String,
        /// Write here instead of standard output.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Render the policy page (HTML, Markdown) or the records of processing (JSON).
    Render {
        /// [default: policy/custos-app.toml]
        file: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "html")]
        format: RenderFormat,
        #[arg(long, default_value = "zh")]
        lang: String,
        /// Write here instead of standard output.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum OpsCommand {
    /// Discontinue a declared feature (or the whole service): collection stops at once,
    /// affected users are told, its data is deleted after the period.
    Discontinue {
        /// A feature id from the declaration's list of features.
        #[arg(long, required_unless_present = "service", conflicts_with = "service")]
        feature: Option<String>,
        /// Stop the whole service (only the privacy center stays until erasure).
        #[arg(long)]
        service: bool,
        /// When the data is deleted: 30d, 12h, 90m, 45s.
        #[arg(long, default_value = "30d")]
        after: String,
        /// Told to the users with the notice.
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// List cessations with their erasure progress.
    Cessations {
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Erase the data of every cessation whose period has passed.
    RunCessations {
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Record a new controller (merger, acquisition): a new version differing only in
    /// the controller section, announced to every user; every consent stays valid.
    ChangeController {
        #[arg(long)]
        name_en: String,
        #[arg(long)]
        name_zh: String,
        /// The address (both languages unless --address-zh is given).
        #[arg(long)]
        address: String,
        #[arg(long)]
        address_zh: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        phone: Option<String>,
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Print every sink's region as checked at startup.
    Residency {
        #[command(flatten)]
        storage: StorageArgs,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum RecordsFormat {
    Json,
    Csv,
    Html,
}

#[derive(Clone, Copy, ValueEnum)]
enum RenderFormat {
    Html,
    Markdown,
    Records,
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Walk the hash chain; exit 1 and name the first altered, removed or reordered record.
    Verify {
        #[command(flatten)]
        storage: StorageArgs,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a staff account (bootstraps the first admin). Prints the generated password,
    /// the TOTP secret and its otpauth:// URI once; they are not shown again.
    CreateStaff {
        #[arg(long)]
        username: String,
        /// support, analyst, security_officer, privacy_officer or admin.
        #[arg(long)]
        role: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the audit chain and check every signed head; exit 1 naming the first
    /// altered, removed or reordered entry.
    Verify {
        #[command(flatten)]
        storage: StorageArgs,
    },
    /// Write the whole log as JSON lines for auditors: the verification key, every
    /// entry, every signed head (the current head is signed first).
    Export {
        /// Write here instead of standard output.
        #[arg(long, short)]
        out: Option<PathBuf>,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

#[derive(Subcommand)]
enum ErasureCommand {
    /// Scan every table of the data database and the vault, and every file of the data
    /// directory (search index, local media), for the subject's id in binary and text
    /// forms; exit 1 naming what was found. Consent ledger records, kept by the random
    /// subject id alone, are listed as kept and do not fail the check.
    Verify {
        /// The subject id (UUID).
        subject: String,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

#[derive(Subcommand)]
enum JobsCommand {
    /// Run the jobs: with --once each selected job once, printing what it did, then exit;
    /// without it, on the schedule of `[jobs]` in custos.toml until interrupted. A job
    /// that another process is running is skipped and says so (PostgreSQL advisory lock;
    /// a leased lock row on SQLite). The purge deletes every record past the retention its
    /// purpose declares (the consent ledger, append-only, is kept); `cancellations` erases
    /// the accounts whose cooling-off period is over; `incident-alarms` raises the alarm for
    /// incidents 72 hours past detection without a regulator report.
    Run {
        /// Run each selected job once and exit.
        #[arg(long)]
        once: bool,
        /// Which job to run.
        #[arg(long, value_enum, default_value = "all")]
        job: JobChoice,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum JobChoice {
    Purge,
    Cancellations,
    IncidentAlarms,
    All,
}

async fn jobs_run(
    once: bool,
    job: JobChoice,
    storage: &StorageArgs,
) -> anyhow::Result<std::process::ExitCode> {
    use custos_app::jobs::{Job, Jobs};
    let which = match job {
        JobChoice::Purge => vec![Job::Purge],
        JobChoice::Cancellations => vec![Job::Cancellations],
        JobChoice::IncidentAlarms => vec![Job::IncidentAlarms],
        JobChoice::All => Job::ALL.to_vec(),
    };
    let cfg = storage.resolve(None)?;
    let app = custos_app::App::open(&cfg, Arc::new(SystemClock)).await?;
    let jobs = Jobs::new(app.clone(), cfg.jobs.clone());
    let outcome = if once {
        jobs.run_once(&which).await.map(|runs| {
            for r in runs {
                println!("{r}");
            }
        })
    } else {
        match jobs.prepare().await {
            Ok(_) => {
                jobs.run_scheduled(&which, shutdown_signal()).await;
                Ok(())
            }
            Err(e) => Err(e),
        }
    };
    app.shutdown().await;
    outcome.map_err(|e| anyhow::anyhow!("job failed: {e}"))?;
    Ok(std::process::ExitCode::SUCCESS)
}

#[derive(Subcommand)]
enum CatalogCommand {
    /// Import items from a JSON array or a CSV file (by extension; see --format). Rows are
    /// checked one by one and every invalid row is named by its line; nothing is imported
    /// while any row is invalid, unless --skip-bad-rows. Items with an `external_id` that
    /// exists already are updated.
    Import {
        file: PathBuf,
        /// Import the valid rows and list the invalid ones instead of importing nothing.
        #[arg(long)]
        skip_bad_rows: bool,
        /// json or csv [default: from the file extension]
        #[arg(long, value_enum)]
        format: Option<ImportFormat>,
        #[command(flatten)]
        storage: StorageArgs,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ImportFormat {
    Json,
    Csv,
}

async fn catalog(cmd: CatalogCommand) -> anyhow::Result<std::process::ExitCode> {
    use custos_app::catalog::input::Format;
    use custos_app::catalog::ImportError;
    use std::process::ExitCode;
    let CatalogCommand::Import {
        file,
        skip_bad_rows,
        format,
        storage,
    } = cmd;
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let format = match format {
        Some(ImportFormat::Json) => Format::Json,
        Some(ImportFormat::Csv) => Format::Csv,
        None => Format::from_path(&file),
    };
    let app = custos_app::App::open(&storage.resolve(None)?, Arc::new(SystemClock)).await?;
    let mut progress = |n: usize| eprint!("\rwritten {n} rows");
    let outcome = app
        .catalog
        .import_text(&text, format, skip_bad_rows, &mut progress)
        .await;
    eprintln!();
    app.shutdown().await;
    match outcome {
        Ok(report) => {
            for e in &report.skipped {
                eprintln!("{}:{}: skipped: {}", file.display(), e.line, e.message);
            }
            println!(
                "imported {} items from {}{}",
                report.imported,
                file.display(),
                if report.skipped.is_empty() {
                    String::new()
                } else {
                    format!("; skipped {} invalid rows", report.skipped.len())
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(ImportError::Rows(rows)) => {
            for e in &rows {
                eprintln!("{}:{}: {}", file.display(), e.line, e.message);
            }
            eprintln!(
                "{} invalid rows; nothing was imported (use --skip-bad-rows to import the valid ones)",
                rows.len()
            );
            Ok(ExitCode::FAILURE)
        }
        Err(ImportError::App(e)) => Err(anyhow::anyhow!("import failed: {e}")),
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logs(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUSTOS_LOG")
        // tantivy logs every segment merge at info; its warnings are what an operator needs.
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!("{default_level},tantivy=warn"))
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    use std::process::ExitCode;
    match cli.command {
        Command::Serve(args) => {
            let file = args.storage.file()?;
            let format = args.log_format.unwrap_or(match file.log_format.as_deref() {
                Some("text") => LogFormat::Text,
                _ => LogFormat::Json,
            });
            init_logs(format, "info");
            serve(args, file).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy(cmd) => {
            init_logs(LogFormat::Text, "warn");
            policy(cmd).await
        }
        Command::Ledger(LedgerCommand::Verify { storage }) => {
            init_logs(LogFormat::Text, "warn");
            let kernel = Kernel::open(&storage.resolve(None)?, Arc::new(SystemClock)).await?;
            let report = ledger::verify(&kernel.db, |n| eprint!("\rchecked {n} records")).await?;
            eprintln!();
            kernel.shutdown().await;
            match report.first_bad {
                None => {
                    println!(
                        "ledger intact: {} records, head {}",
                        report.records_checked, report.head_seq
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Some(bad) => {
                    println!(
                        "ledger ALTERED at record {}: {} ({} records verified before it)",
                        bad.seq, bad.reason, report.records_checked
                    );
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Catalog(cmd) => {
            init_logs(LogFormat::Text, "warn");
            catalog(cmd).await
        }
        Command::Erasure(ErasureCommand::Verify { subject, storage }) => {
            init_logs(LogFormat::Text, "warn");
            erasure_verify(&subject, &storage).await
        }
        Command::Jobs(JobsCommand::Run { once, job, storage }) => {
            init_logs(LogFormat::Text, if once { "warn" } else { "info" });
            jobs_run(once, job, &storage).await
        }
        Command::Admin(cmd) => {
            init_logs(LogFormat::Text, "warn");
            admin(cmd).await
        }
        Command::Audit(cmd) => {
            init_logs(LogFormat::Text, "warn");
            audit(cmd).await
        }
        Command::Ops(cmd) => {
            init_logs(LogFormat::Text, "warn");
            ops_command(cmd).await
        }
        Command::Keygen => {
            println!(
                "{}",
                custos_crypto::MasterKey::generate(&mut custos_crypto::OsRng).to_base64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Openapi => {
            print!("{}", custos_http::openapi::document());
            Ok(ExitCode::SUCCESS)
        }
    }
}

const DEFAULT_POLICY: &str = "policy/custos-app.toml";

async fn admin(cmd: AdminCommand) -> anyhow::Result<std::process::ExitCode> {
    use custos_app::ops::{Actor, Role};
    let AdminCommand::CreateStaff {
        username,
        role,
        storage,
    } = cmd;
    let role = Role::parse(&role).with_context(|| {
        format!("`{role}` is not a role; roles: support, analyst, security_officer, privacy_officer, admin")
    })?;
    let app = custos_app::App::open(&storage.resolve(None)?, Arc::new(SystemClock)).await?;
    let created = app
        .ops
        .create_staff(&Actor::Cli, &username, role, None)
        .await;
    app.shutdown().await;
    let created = created.map_err(|e| anyhow::anyhow!("{} ({})", e, e.code()))?;
    println!(
        "created staff account `{}` with role {}",
        created.username,
        created.role.as_str()
    );
    println!("password:    {}", created.password.expose());
    println!("TOTP secret: {}", created.totp_secret.expose());
    println!("TOTP URI:    {}", created.otpauth_uri.expose());
    println!("These are shown once. Sign in with POST /api/v1/staff/sessions (username, password, totp_code).");
    Ok(std::process::ExitCode::SUCCESS)
}

async fn audit(cmd: AuditCommand) -> anyhow::Result<std::process::ExitCode> {
    use std::io::Write;
    use std::process::ExitCode;
    match cmd {
        AuditCommand::Verify { storage } => {
            let kernel = Kernel::open(&storage.resolve(None)?, Arc::new(SystemClock)).await?;
            let report =
                custos_app::ops::audit::verify(&kernel, |n| eprint!("\rchecked {n} entries")).await;
            eprintln!();
            kernel.shutdown().await;
            let report = report?;
            match report.first_bad {
                None => {
                    println!(
                        "audit log intact: {} entries, {} signed heads verified, head {}",
                        report.entries_checked, report.signed_heads_checked, report.head_seq
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Some(bad) => {
                    println!(
                        "audit log ALTERED at entry {}: {} ({} entries verified before it)",
                        bad.seq, bad.reason, report.entries_checked
                    );
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        AuditCommand::Export { out, storage } => {
            let cfg = storage.resolve(None)?;
            let every = i64::from(cfg.ops.audit_sign_every.unwrap_or(64));
            let kernel = Kernel::open(&cfg, Arc::new(SystemClock)).await?;
            let mut sink: Box<dyn Write> = match &out {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("cannot write {}", p.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let n = custos_app::ops::audit::export(&kernel, every, |l| writeln!(sink, "{l}")).await;
            kernel.shutdown().await;
            let n = n?;
            sink.flush()?;
            eprintln!("exported {n} audit entries");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn policy(cmd: PolicyCommand) -> anyhow::Result<std::process::ExitCode> {
    use std::process::ExitCode;
    match cmd {
        PolicyCommand::Check { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            match Policy::parse(&text) {
                Ok(p) => {
                    println!(
                        "{}: valid — {} purposes, {} features, {} categories; version {}",
                        file.display(),
                        p.purposes().len(),
                        p.declaration().features.len(),
                        p.declaration().categories.len(),
                        p.hash()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{}: {e}", file.display());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        PolicyCommand::Publish { file, storage } => {
            let path = file.unwrap_or_else(|| PathBuf::from(DEFAULT_POLICY));
            let policy = read_policy(&path)?;
            let app =
                custos_app::App::open(&storage.resolve(Some(path.clone()))?, Arc::new(SystemClock))
                    .await?;
            // Records the announcement and notifies every account (P35).
            let out = app
                .policy_ops
                .publish_revision(&policy)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let new = out.published;
            let v = policy_versions::find(&app.kernel.db, &out.hash)
                .await?
                .context("the published version is not found")?;
            let history = policy_versions::load_all(&app.kernel.db).await?;
            app.shutdown().await;
            if new {
                if out.notified > 0 {
                    println!("announced to {} account(s)", out.notified);
                }
                println!(
                    "published version {} ({}) as #{}",
                    v.hash, v.revision, v.seq
                );
                if history.len() >= 2 {
                    let d = custos_policy::diff(
                        &history[history.len() - 2],
                        &history[history.len() - 1],
                    );
                    print!("{d}");
                }
            } else {
                println!("already published as #{}: {}", v.seq, v.hash);
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Versions { storage } => {
            let kernel = Kernel::open(&storage.resolve(None)?, Arc::new(SystemClock)).await?;
            for v in policy_versions::list(&kernel.db).await? {
                println!(
                    "#{:<4} {}  {}  {}",
                    v.seq,
                    v.hash,
                    custos_core::clock::rfc3339(v.published_at_ms),
                    v.revision
                );
            }
            kernel.shutdown().await;
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Diff {
            a,
            b,
            json,
            storage,
        } => {
            let mut kernel = None;
            let pa = load_version(&a, &storage, &mut kernel).await?;
            let pb = load_version(&b, &storage, &mut kernel).await?;
            if let Some(k) = kernel {
                k.shutdown().await;
            }
            let d = custos_policy::diff(&pa, &pb);
            if json {
                println!("{}", serde_json::to_string_pretty(&d)?);
            } else {
                print!("{d}");
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Records {
            file,
            format,
            lang,
            out,
        } => {
            let path = file.unwrap_or_else(|| PathBuf::from(DEFAULT_POLICY));
            let policy = read_policy(&path)?;
            let lang = Lang::parse(&lang).context("--lang must be zh or en")?;
            let text = match format {
                RecordsFormat::Json => {
                    serde_json::to_string_pretty(&render::records_of_processing(&policy))? + "\n"
                }
                RecordsFormat::Csv => custos_policy::records::records_csv(&policy),
                RecordsFormat::Html => custos_policy::records::records_html(&policy, lang),
            };
            match out {
                Some(o) => std::fs::write(&o, text)
                    .with_context(|| format!("cannot write {}", o.display()))?,
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Render {
            file,
            format,
            lang,
            out,
        } => {
            let path = file.unwrap_or_else(|| PathBuf::from(DEFAULT_POLICY));
            let policy = read_policy(&path)?;
            let lang = Lang::parse(&lang).context("--lang must be zh or en")?;
            let text = match format {
                RenderFormat::Html => render::html(&policy, lang),
                RenderFormat::Markdown => render::markdown(&policy, lang),
                RenderFormat::Records => {
                    serde_json::to_string_pretty(&render::records_of_processing(&policy))? + "\n"
                }
            };
            match out {
                Some(o) => std::fs::write(&o, text)
                    .with_context(|| format!("cannot write {}", o.display()))?,
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A declaration file, or a published version by hash or unique prefix.
async fn load_version(
    which: &str,
    storage: &StorageArgs,
    kernel: &mut Option<Arc<Kernel>>,
) -> anyhow::Result<Policy> {
    let path = PathBuf::from(which);
    if path.exists() {
        return read_policy(&path);
    }
    if kernel.is_none() {
        *kernel = Some(Kernel::open(&storage.resolve(None)?, Arc::new(SystemClock)).await?);
    }
    let k = kernel.as_ref().context("kernel is open")?;
    let v = policy_versions::find(&k.db, which)
        .await?
        .with_context(|| format!("`{which}` is neither a file nor a published version"))?;
    let src = policy_versions::source(&k.db, &v.hash)
        .await?
        .context("version source missing")?;
    Ok(Policy::parse(&src)?)
}

async fn serve(args: ServeArgs, file: FileConfig) -> anyhow::Result<()> {
    let listen = args
        .listen
        .or(file.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    let cfg = args.storage.resolve(args.policy.clone())?;
    let demo = args.demo || file.demo.unwrap_or(false);
    let app = custos_app::App::open(&cfg, Arc::new(SystemClock)).await?;
    let kernel = app.kernel.clone();
    if demo {
        let n = app
            .catalog
            .seed_demo(
                cfg.catalog
                    .demo_items
                    .unwrap_or(custos_app::catalog::demo::DEMO_ITEMS),
            )
            .await
            .map_err(|e| anyhow::anyhow!("cannot create the demo catalog: {e}"))?;
        if n > 0 {
            tracing::info!(items = n, "created the demo catalog");
        }
    }
    let jobs = custos_app::jobs::Jobs::start(app.clone(), cfg.jobs.clone())
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the background jobs: {e}"))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, backend = ?kernel.db.backend(), demo, "custos is serving");
    // The bound address on stdout lets scripts and tests use --listen 127.0.0.1:0.
    println!("listening on http://{addr}");
    let opts = custos_http::HttpOptions {
        writes_per_second: args
            .write_rate_limit
            .or(file.write_rate_limit)
            .unwrap_or(custos_http::limit::DEFAULT_WRITES_PER_SECOND),
    };
    let router = custos_web::app_with(app.clone(), opts);
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    tracing::info!("shutting down");
    if let Some(j) = jobs {
        j.abort();
    }
    app.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Tables whose rows are kept after erasure, in de-identified form.
const KEPT_TABLES: [&str; 1] = ["consent_ledger"];

async fn erasure_verify(
    subject: &str,
    storage: &StorageArgs,
) -> anyhow::Result<std::process::ExitCode> {
    let id: custos_core::SubjectId = subject
        .parse()
        .map_err(|_| anyhow::anyhow!("`{subject}` is not a subject id"))?;
    let cfg = storage.resolve(None)?;
    let kernel = Kernel::open(&cfg, Arc::new(SystemClock)).await?;
    let bytes = vec![id.as_bytes().to_vec()];
    let hyphenated = id.to_string();
    let texts = vec![
        hyphenated.clone(),
        hyphenated.to_uppercase(),
        hyphenated.replace('-', ""),
        hyphenated.replace('-', "").to_uppercase(),
    ];
    let mut found = Vec::new();
    let mut kept = Vec::new();
    for (store, db) in [("data", &kernel.db), ("vault", kernel.vault.db())] {
        for h in custos_store::rights::scan(db, &bytes, &texts).await? {
            let line = format!(
                "{store} database: {}.{}: {} row(s)",
                h.table, h.column, h.rows
            );
            if store == "data" && KEPT_TABLES.contains(&h.table.as_str()) {
                kept.push(line);
            } else {
                found.push(line);
            }
        }
    }
    kernel.shutdown().await;
    // Files: the search index, local media and anything else in the data directory,
    // except the SQLite databases scanned above and the master key.
    let mut needles: Vec<Vec<u8>> = bytes;
    needles.extend(texts.iter().map(|t| t.as_bytes().to_vec()));
    let mut stack = vec![cfg.data_dir.clone()];
    let mut files = 0usize;
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            if dir == cfg.data_dir
                && (name.starts_with("custos.db")
                    || name.starts_with("keys.db")
                    || name == "master.key")
            {
                continue;
            }
            let Ok(content) = std::fs::read(&path) else {
                continue;
            };
            files += 1;
            if needles
                .iter()
                .any(|n| content.windows(n.len()).any(|w| w == n.as_slice()))
            {
                found.push(format!("file: {}", path.display()));
            }
        }
    }
    for k in &kept {
        println!("kept de-identified (random subject id only): {k}");
    }
    if found.is_empty() {
        println!(
            "erasure verified: 0 hits for {id} in the data database, the vault and {files} files"
        );
        Ok(std::process::ExitCode::SUCCESS)
    } else {
        println!("erasure INCOMPLETE: {} hit(s) for {id}", found.len());
        for f in &found {
            println!("  {f}");
        }
        Ok(std::process::ExitCode::FAILURE)
    }
}

/// `custos ops …`: the policy's lifecycle obligations (P18, P20, P22, P31).
async fn ops_command(cmd: OpsCommand) -> anyhow::Result<std::process::ExitCode> {
    use custos_app::ops::cessation::{parse_period, CessationTarget};
    let storage = match &cmd {
        OpsCommand::Discontinue { storage, .. }
        | OpsCommand::Cessations { storage }
        | OpsCommand::RunCessations { storage }
        | OpsCommand::ChangeController { storage, .. }
        | OpsCommand::Residency { storage } => storage.clone(),
    };
    let app = custos_app::App::open(&storage.resolve(None)?, Arc::new(SystemClock)).await?;
    let ops = app.policy_ops.clone();
    let show = |c: &custos_app::ops::cessation::Cessation| {
        println!(
            "#{} {} {} [{}] purposes {} · notified {} · erase after {} · {}/{} erased",
            c.id,
            c.scope,
            c.feature,
            c.status,
            c.purposes.join(","),
            c.notified,
            custos_core::clock::rfc3339(c.erase_after_ms),
            c.subjects_done,
            c.subjects_total
        )
    };
    let result: anyhow::Result<()> = async {
        match cmd {
            OpsCommand::Discontinue {
                feature,
                service,
                after,
                reason,
                ..
            } => {
                let target = match (feature, service) {
                    (Some(f), false) => CessationTarget::Feature(f),
                    _ => CessationTarget::Service,
                };
                let after = parse_period(&after).map_err(|e| anyhow::anyhow!("--after: {e}"))?;
                let c = ops
                    .discontinue(&target, after, &reason)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                show(&c);
            }
            OpsCommand::Cessations { .. } => {
                for c in ops.cessations().await.map_err(|e| anyhow::anyhow!("{e}"))? {
                    show(&c);
                }
            }
            OpsCommand::RunCessations { .. } => {
                for c in ops
                    .run_due_cessations()
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?
                {
                    show(&c);
                }
            }
            OpsCommand::ChangeController {
                name_en,
                name_zh,
                address,
                address_zh,
                email,
                phone,
                ..
            } => {
                let zh = address_zh.unwrap_or_else(|| address.clone());
                let out = ops
                    .change_controller(&custos_app::ops::controller::NewController {
                        name: Some(custos_policy::Text {
                            en: name_en,
                            zh: name_zh,
                        }),
                        address: Some(custos_policy::Text { en: address, zh }),
                        email,
                        phone,
                        dpo_email: None,
                    })
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                println!(
                    "published version {} ({}); notified {} account(s); paused purposes: {}",
                    out.hash,
                    out.revision,
                    out.notified,
                    if out.paused_purposes.is_empty() {
                        "none".to_owned()
                    } else {
                        out.paused_purposes.join(",")
                    }
                );
            }
            OpsCommand::Residency { .. } => {
                println!("declared region {}", ops.residency.region);
                for sink in &ops.residency.sinks {
                    println!(
                        "{}\t{}{}",
                        sink.sink,
                        sink.region,
                        match &sink.consent_purpose {
                            Some(p) => format!("\tcross-border, separate consent `{p}`"),
                            None if sink.cross_border => "\tcross-border".to_owned(),
                            None => String::new(),
                        }
                    );
                }
            }
        }
        Ok(())
    }
    .await;
    app.shutdown().await;
    result?;
    Ok(std::process::ExitCode::SUCCESS)
}
