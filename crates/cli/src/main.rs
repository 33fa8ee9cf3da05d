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
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
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
            let kernel =
                Kernel::open(&storage.resolve(Some(path.clone()))?, Arc::new(SystemClock)).await?;
            let (v, new) = kernel
                .publish(&policy)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let history = policy_versions::load_all(&kernel.db).await?;
            kernel.shutdown().await;
            if new {
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
    let router = custos_http::app_with(app.clone(), opts);
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    tracing::info!("shutting down");
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
