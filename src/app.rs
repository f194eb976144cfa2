//! Builds and wires the service: prompts, SIP driver, call routing, HTTP. Exposes the
//! bound ports (port 0 works in tests) and a draining shutdown.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api;
use crate::call::actions::{self, ProgramActions};
use crate::call::outbound::SipPlacer;
use crate::call::ports::RtpPorts;
use crate::call::router::SharedDialplans;
use crate::call::{CallContext, CallLog, router};
use crate::clock::{SharedClock, SystemClock};
use crate::config::Settings;
use crate::dialer::runtime::{Dialer, DialerConfig, DialerHandle};
use crate::media::MediaWorkers;
use crate::sip::transport::{self, Census, SipHandle};
use crate::store::{Store, StoreError};
use tongdai_domain::dialer::SchedulerConfig;
use tongdai_ivr::{CompileContext, DialplanError, Dialplans};
use tongdai_media::{PromptCache, PromptError};
use tongdai_sip::{AccessConfig, EndpointConfig, Timers};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Prompts(#[from] PromptError),
    #[error("{} dialplan error(s):\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Dialplans(Vec<DialplanError>),
    #[error("registration store: {0}")]
    Store(#[from] StoreError),
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What `tongdai check` validated.
#[derive(Debug)]
pub struct CheckReport {
    pub prompts: usize,
    pub dialplans: usize,
    pub numbers: Vec<String>,
}

/// Compiles every dialplan against the loaded prompts and the program's actions.
pub fn load_dialplans(settings: &Settings, prompts: &PromptCache) -> Result<Dialplans, AppError> {
    let ctx = CompileContext {
        prompts: prompts.ids().map(str::to_string).collect(),
        actions: actions::catalogue(),
    };
    tongdai_ivr::load_dir(&settings.dialplans.dir, &ctx).map_err(AppError::Dialplans)
}

/// Loads and validates everything that can be wrong before a socket is opened.
pub fn check(settings: &Settings) -> Result<(PromptCache, Dialplans, CheckReport), AppError> {
    let prompts = PromptCache::load_dir(&settings.prompts.dir)?;
    let dialplans = load_dialplans(settings, &prompts)?;
    let mut numbers: Vec<String> = dialplans.numbers().map(str::to_string).collect();
    numbers.sort();
    let report = CheckReport {
        prompts: prompts.len(),
        dialplans: dialplans.len(),
        numbers,
    };
    Ok((prompts, dialplans, report))
}

/// The running service.
pub struct App {
    pub sip_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub calls: CallLog,
    pub store: Store,
    /// The media workers (their counters: benchmarks, tests, `/debug/runtime`).
    pub media: MediaWorkers,
    dialplans: SharedDialplans,
    prompts: PromptCache,
    sip: SipHandle,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    driver: tokio::task::JoinHandle<()>,
    http_task: tokio::task::JoinHandle<()>,
    /// Stops the media workers (after the calls: they play prompts during the grace)
    /// and the idle heap trim.
    media_stop: CancellationToken,
    media_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The campaign dialer (`None` when `[dialer] enabled = false`).
    dialer: Option<DialerHandle>,
    settings: Settings,
}

impl App {
    pub async fn start(settings: Settings) -> Result<App, AppError> {
        Self::start_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// Like [`App::start`], with the clock the API decides leases and dates by (tests
    /// set the time instead of sleeping).
    pub async fn start_with_clock(settings: Settings, clock: SharedClock) -> Result<App, AppError> {
        let (prompts, dialplans, report) = check(&settings)?;
        tracing::info!(prompts = report.prompts, dialplans = report.dialplans,
            numbers = ?report.numbers, "prompts and dialplans loaded");
        let store = Store::connect(&settings.database.url).await?;
        let dialplans: SharedDialplans = Arc::new(RwLock::new(Arc::new(dialplans)));

        let listen = settings.sip.listen;
        let (udp, tcp) = transport::bind(listen)
            .await
            .map_err(|source| AppError::Bind {
                what: "SIP (UDP+TCP)",
                addr: listen,
                source,
            })?;
        let bound = udp.local_addr().map_err(|source| AppError::Bind {
            what: "SIP",
            addr: listen,
            source,
        })?;
        let advertised_ip = settings.advertised_ip(bound);
        let endpoint_cfg = EndpointConfig {
            advertised: SocketAddr::new(advertised_ip, bound.port()),
            timers: Timers {
                t1: settings.sip.t1,
                t2: settings.sip.t2,
                t4: settings.sip.t4,
            },
            user_agent: settings.sip.user_agent.clone(),
            max_legs: settings.sip.max_calls,
        };
        let access = AccessConfig {
            acl: settings.sip.acl(),
            trunk: settings.trunk.trunk_config(),
        };

        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        // The shared media clock: one worker per runtime worker thread (see media::worker).
        let media_stop = CancellationToken::new();
        let media_workers = tokio::runtime::Handle::current().metrics().num_workers();
        let (media, mut media_tasks) = MediaWorkers::spawn(media_workers, media_stop.clone())
            .map_err(|source| AppError::Bind {
                what: "media workers (epoll)",
                addr: listen,
                source,
            })?;
        let media_for_api = media.clone();
        let media_for_app = media.clone();
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let calls = CallLog::with_observer(metrics.clone());
        media_tasks.push(tokio::spawn(trim_heap_when_idle(
            calls.clone(),
            media_stop.clone(),
        )));
        let ports = Arc::new(RtpPorts::new(
            listen.ip(),
            settings.rtp.port_min,
            settings.rtp.port_max,
        ));
        let router_plans = dialplans.clone();
        let dialer_ports = ports.clone();

        // The router needs the SIP handle (to answer) and the driver needs the router:
        // hand the context to the router through a cell filled right after spawn.
        let ctx_cell: Arc<std::sync::OnceLock<Arc<CallContext>>> = Arc::default();
        let router_cell = ctx_cell.clone();
        let router_tracker = tracker.clone();
        let mut inner: Option<transport::Router> = None;
        let lazy_router: transport::Router = Box::new(move |call| {
            if inner.is_none() {
                let Some(ctx) = router_cell.get() else {
                    return Err(503);
                };
                inner = Some(router::router(
                    ctx.clone(),
                    router_plans.clone(),
                    ports.clone(),
                    router_tracker.clone(),
                ));
            }
            match inner.as_mut() {
                Some(r) => r(call),
                None => Err(503),
            }
        });
        let (sip, driver) =
            transport::spawn_with(endpoint_cfg, access, udp, tcp, lazy_router, clock.clone())
                .map_err(|source| AppError::Bind {
                    what: "SIP",
                    addr: listen,
                    source,
                })?;
        let ctx = Arc::new(CallContext {
            sip: sip.clone(),
            prompts: prompts.clone(),
            log: calls.clone(),
            advertised_ip,
            answer_delay: settings.sip.answer_delay,
            inactivity_timeout: settings.rtp.inactivity_timeout,
            max_send_lag: settings.rtp.max_send_lag,
            actions: ProgramActions {
                store: store.clone(),
                program: Arc::new(settings.program.clone()),
            },
            store: store.clone(),
            media,
            shutdown: shutdown.clone(),
            shutdown_grace: settings.shutdown.grace,
        });
        let _ = ctx_cell.set(ctx.clone());

        // The campaign dialer: recover what a previous run left dialling, then dial.
        let dialer = if settings.dialer.enabled {
            let placer = SipPlacer::new(
                ctx,
                dialplans.clone(),
                dialer_ports,
                tracker.clone(),
                settings.trunk.caller_id.trim().to_string(),
            );
            let cfg = DialerConfig {
                instance: settings.dialer.instance_name(),
                poll_interval: settings.dialer.poll_interval,
                scheduler: SchedulerConfig {
                    outbound_ceiling: u32::try_from(
                        settings.sip.max_calls - settings.dialer.inbound_reserve,
                    )
                    .unwrap_or(u32::MAX),
                    ..SchedulerConfig::default()
                },
                program: Arc::new(settings.program.clone()),
                call_id_host: advertised_ip.to_string(),
            };
            tracing::info!(instance = %cfg.instance, "campaign dialer starting");
            let (dialer, ends) = Dialer::new(store.clone(), placer, cfg, clock.clone());
            dialer.recover().await?;
            Some(dialer.spawn(ends))
        } else {
            None
        };

        let http_listener = tokio::net::TcpListener::bind(settings.http.listen)
            .await
            .map_err(|source| AppError::Bind {
                what: "HTTP",
                addr: settings.http.listen,
                source,
            })?;
        let http_addr = http_listener
            .local_addr()
            .map_err(|source| AppError::Bind {
                what: "HTTP",
                addr: settings.http.listen,
                source,
            })?;
        let http_task = tokio::spawn(api::serve(
            http_listener,
            api::ApiState::new(api::ApiContext {
                store: store.clone(),
                program: Arc::new(settings.program.clone()),
                calls: calls.clone(),
                sip: sip.clone(),
                reload: Arc::new({
                    let settings = settings.clone();
                    let prompts = prompts.clone();
                    let dialplans = dialplans.clone();
                    move || Ok(reload_dialplans(&settings, &prompts, &dialplans)?)
                }),
                dialplans: Arc::new({
                    let dialplans = dialplans.clone();
                    move || dialplans.read().map(|d| d.len()).unwrap_or(0)
                }),
                dialplan_names: Arc::new({
                    let dialplans = dialplans.clone();
                    move || {
                        dialplans
                            .read()
                            .map(|d| d.names().map(str::to_owned).collect())
                            .unwrap_or_default()
                    }
                }),
                outbound_line: settings.trunk.trunk_config().map(|t| t.caller_id),
                media_lag: Arc::new({
                    let media = media_for_api;
                    move || media.send_lag()
                }),
                metrics,
                clock,
                settings: settings.api.clone(),
                shutdown: shutdown.clone(),
            }),
        ));
        tracing::info!(sip = %bound, advertised = %advertised_ip, http = %http_addr, "tongdai is up");
        Ok(App {
            sip_addr: bound,
            http_addr,
            calls,
            store,
            media: media_for_app,
            dialplans,
            prompts,
            sip,
            shutdown,
            tracker,
            driver,
            http_task,
            media_stop,
            media_tasks,
            dialer,
            settings,
        })
    }

    /// Recompiles the dialplans and swaps them in; on any error the old ones stay.
    pub fn reload(&self) -> Result<usize, AppError> {
        reload_dialplans(&self.settings, &self.prompts, &self.dialplans)
    }

    /// The SIP driver's handle: `dial` for outbound calls, `trunk_state` to watch the
    /// trunk, `command` for legs.
    pub fn sip(&self) -> &SipHandle {
        &self.sip
    }

    pub async fn census(&self) -> Option<Census> {
        self.sip.census().await
    }

    /// Drains and stops: new INVITEs get 503, calls in progress get `shutdown.grace` to
    /// finish, then are hung up with BYE; we wait for those BYEs to be answered (bounded
    /// by Timer F) before the sockets close.
    pub async fn shutdown(self) {
        tracing::info!(grace = ?self.settings.shutdown.grace, active = self.calls.active_count(), "draining");
        if let Some(dialer) = &self.dialer {
            dialer.drain();
        }
        self.sip.set_draining(true);
        self.shutdown.cancel();
        self.tracker.close();
        let bound = self.settings.shutdown.grace + Duration::from_secs(5);
        if tokio::time::timeout(bound, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("calls still running after the grace period");
        }
        // The dialer finishes the attempts of the calls that just ended.
        if let Some(dialer) = self.dialer {
            dialer.shutdown(Duration::from_secs(10)).await;
        }
        let bye_wait = self.settings.sip.t1 * 64;
        let _ = tokio::time::timeout(bye_wait, async {
            loop {
                match self.sip.census().await {
                    Some(c) if c.legs > 0 => tokio::time::sleep(Duration::from_millis(20)).await,
                    _ => break,
                }
            }
        })
        .await;
        // Remove our REGISTER binding so the trunk stops routing calls here.
        self.sip.unregister(self.settings.sip.t1 * 8).await;
        self.media_stop.cancel();
        for task in self.media_tasks {
            let _ = task.await;
        }
        self.sip.stop();
        let _ = self.driver.await;
        let _ = self.http_task.await;
        self.store.close().await;
        tracing::info!("stopped");
    }
}

/// Gives the heap freed by finished calls back to the OS once the service is idle: glibc
/// keeps freed memory in its arenas, so after a load peak the RSS would stay at the peak
/// for the life of the process. Checked once a second; while no call is active after
/// calls have ended, trims at once and then every 10 s for a minute, because what calls
/// leave behind is freed in steps (the SIP layer keeps completed transactions for 64·T1
/// = 32 s to absorb retransmissions). Never in the middle of a load.
async fn trim_heap_when_idle(calls: CallLog, stop: CancellationToken) {
    const TRIMS_AFTER_ACTIVITY: u32 = 7;
    const EVERY: Duration = Duration::from_secs(10);
    let mut seen_finished = 0;
    let mut trims_left = 0;
    let mut next_trim = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = tokio::time::Instant::now();
        let finished = calls.finished_total();
        if finished != seen_finished {
            seen_finished = finished;
            trims_left = TRIMS_AFTER_ACTIVITY;
            next_trim = now;
        }
        if trims_left > 0 && now >= next_trim && calls.active_count() == 0 {
            trims_left -= 1;
            next_trim = now + EVERY;
            trim_heap();
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    // SAFETY: malloc_trim only releases free memory of the allocator's own arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

fn reload_dialplans(
    settings: &Settings,
    prompts: &PromptCache,
    shared: &SharedDialplans,
) -> Result<usize, AppError> {
    match load_dialplans(settings, prompts) {
        Ok(plans) => {
            let n = plans.len();
            let mut guard = shared.write().unwrap_or_else(|e| e.into_inner());
            *guard = Arc::new(plans);
            tracing::info!(dialplans = n, "dialplans reloaded");
            Ok(n)
        }
        Err(e) => {
            tracing::error!(error = %e, "dialplan reload refused; the running plans stay");
            Err(e)
        }
    }
}
