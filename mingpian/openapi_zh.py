"""The OpenAPI document in Chinese, for the API explorer (`/api`) and the people who read it.

Every operation gets a Chinese `summary` and `description` and a Chinese tag (the area it
belongs to); the English the route modules wrote is kept beside them as `x-summary-en` and
`x-description-en`, for developers and programs. Applied to the built document, after the
features' hooks, so a route module documents itself in English as before and adds its Chinese
here (tests/server/test_openapi_zh.py fails for an operation without it).
"""

from __future__ import annotations

from typing import Any

METHODS = ("get", "post", "put", "patch", "delete")

# The explorer's groups, in its order: tag name, description, and the first path segments
# (after `/api/` for API paths) whose operations it holds.
TAGS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "模板与渲染",
        "名片模板的清单、数据定义，以及用数据生成卡片（5G 消息报文、老手机文本、图片、视频、H5 页面）。",
        ("templates", "profiles"),
    ),
    ("图片与视频", "渲染出的图片和视频文件、媒体渲染任务、媒体素材库的公开文件。", ("media", "jobs")),
    (
        "聊天机器人",
        "对方点按钮或回复后由聊天机器人回答：各运营商 5G 消息平台的回调，以及机器人信息的提交。",
        ("chatbot", "maap"),
    ),
    (
        "来电名片投递",
        "通话事件、短信网关和卡片短信平台的回调、其他渠道收到的回复。",
        ("calls", "gateway", "replies", "cardsms"),
    ),
    (
        "企业与审核",
        "企业、线路、名片、员工、套餐、素材、密钥、实验，以及运营方的审核队列。",
        ("enterprises", "lines", "reviews", "brand-requests"),
    ),
    ("报表与短链接", "报表页面和短信里的短链接（名片的 H5 页面及其按钮）。", ("reports", "s", "delivery")),
    ("控制台与登录", "控制台页面和它的登录会话。", ("console", "session")),
    (
        "工作台与文档",
        "名片工作台、文档页面、API 浏览器和它们的静态文件。",
        ("", "t", "static", "studio", "capabilities", "docs", "api"),
    ),
    ("运维", "存活和就绪检查、监控指标、本接口文档。", ("healthz", "readyz", "metrics", "openapi.json")),
)
OTHER_TAG = "其他"

# "METHOD path" → (summary, description), both Chinese.
OPERATIONS: dict[str, tuple[str, str]] = {
    "GET /": ("名片工作台：模板一览", "每个模板一块：缩略图、发送时机和说明；有错误的模板连同问题一起列出。"),
    "GET /api": ("API 浏览器", "浏览本服务的 OpenAPI 文档（/api/openapi.json），并在页面上直接发送请求。"),
    "GET /api/brand-requests": (
        "品牌变更申请（运营方）",
        "所有企业某一状态的品牌变更申请，最早的在前。仅运营方。",
    ),
    "POST /api/calls": (
        "上报一个通话事件",
        "通话事件（来电前、通话中、挂机后）。同一 call_id 和阶段只处理一次；名片在后台发送。",
    ),
    "GET /api/calls/{call_id}": ("一通电话的投递", "这通电话的各次投递及每次尝试：渠道、结果、回执。"),
    "GET /api/capabilities": (
        "服务器能力",
        "已注册的渲染格式、聊天机器人是否可用、项目字体，供工作台判断显示什么。",
    ),
    "POST /api/cardsms/{platform}/send-status": (
        "卡片短信发送状态回调",
        "卡片短信平台回报的发送状态；`shortchain` 为一次解析回执（带签名）。",
    ),
    "POST /api/cardsms/{platform}/template-status": (
        "卡片短信模板审核回调",
        "卡片短信平台回报模板在各手机厂商的审核结果（带签名的回调）。",
    ),
    "GET /api/chatbot/bots": (
        "已加载的聊天机器人流程",
        "已加载的聊天机器人流程，以及加载失败的流程（附文件和行号）。",
    ),
    "GET /api/chatbot/bots/{bot}/information": (
        "机器人在平台上的信息（运营方）",
        (
            "机器人在其 5G 消息平台上的信息：正在使用的（运营商已通过），"
            "以及审核中或被拒绝的更新和运营商给的原因。仅运营方。"
        ),
    ),
    "POST /api/chatbot/bots/{bot}/information": (
        "提交机器人信息更新（运营方）",
        (
            "向平台（电信、联通）提交机器人的描述、联系方式或固定菜单的更新；等运营商审核通过后才启用。"
            "仅运营方。"
        ),
    ),
    "GET /api/chatbot/messages/{messageId}": (
        "一条下行消息的状态",
        "机器人发出的一条消息的投递状态：排队、已发送、失败，以及平台回报的状态。",
    ),
    "GET /api/enterprises": ("企业列表", "列出企业；企业密钥只看到自己。"),
    "POST /api/enterprises": ("创建企业（运营方）", "新建一个企业。仅运营方。"),
    "GET /api/enterprises/{eid}": ("查看企业", "一个企业的资料：名称、署名、品牌、策略等。"),
    "PUT /api/enterprises/{eid}": (
        "修改企业",
        "整体替换企业资料；企业有已认证的线路后，品牌字段只有运营方能改（企业走品牌变更申请）。",
    ),
    "DELETE /api/enterprises/{eid}": ("删除企业（运营方）", "删除企业及其全部数据。仅运营方。"),
    "GET /api/enterprises/{eid}/audit": ("操作日志", "号码认证、审核决定和每一次修改的记录。"),
    "GET /api/enterprises/{eid}/brand-requests": (
        "企业的品牌变更申请",
        "列出企业的品牌变更申请，最新的在前。",
    ),
    "POST /api/enterprises/{eid}/brand-requests": (
        "提交品牌变更申请",
        "申请修改署名、品牌名、标志、5G 消息号或短信发送号码；同一时间只能有一个待审核的申请，由运营方决定。",
    ),
    "GET /api/enterprises/{eid}/brand-requests/{rid}": ("查看品牌变更申请", "一个品牌变更申请的内容和状态。"),
    "DELETE /api/enterprises/{eid}/brand-requests/{rid}": (
        "撤回品牌变更申请",
        "撤回一个待审核的品牌变更申请。",
    ),
    "POST /api/enterprises/{eid}/brand-requests/{rid}/decision": (
        "审核品牌变更申请（运营方）",
        "通过（应用这些修改）或拒绝一个待审核的品牌变更申请。仅运营方，记入操作日志。",
    ),
    "GET /api/enterprises/{eid}/cards": (
        "名片列表",
        "分页列出名片（?q= 搜索，?limit=&offset= 分页），附总数。",
    ),
    "POST /api/enterprises/{eid}/cards": (
        "新建名片",
        "新建一张名片，成为它的第 1 版；数据按模板检查，经运营方审核后才发送。",
    ),
    "GET /api/enterprises/{eid}/cards/{id}": ("查看名片", "名片最近一次写入的内容、版本号和审核状态。"),
    "PUT /api/enterprises/{eid}/cards/{id}": (
        "修改名片",
        "整体替换名片，成为新的版本；审核期间来电继续发送之前通过的版本。",
    ),
    "DELETE /api/enterprises/{eid}/cards/{id}": ("删除名片", "删除一张名片。"),
    "GET /api/enterprises/{eid}/cards/{id}/carrier-refusals": (
        "运营商对名片的驳回",
        "名片发出后被运营商驳回的记录，最新的在前；驳回期间，这一版名片在那家运营商不以 5G 消息发送。",
    ),
    "DELETE /api/enterprises/{eid}/cards/{id}/carrier-refusals/{carrier}": (
        "解除运营商驳回（运营方）",
        "解除名片在某家运营商的驳回，那里重新以 5G 消息发送。仅运营方，记入操作日志。",
    ),
    "POST /api/enterprises/{eid}/cards/{id}/experiments": (
        "开始实验",
        (
            "在一张名片上开始实验：2–5 个审核通过的版本及权重，一个目标（tap_rate 点击率、open_rate "
            "链接打开率、button:<按钮文字>），每个版本的最小样本，是否自动提升胜出版本。"
            "一张名片同时只能有一个实验：同时开始两个时一个成功，另一个得到 409。"
        ),
    ),
    "GET /api/enterprises/{eid}/cards/{id}/experiments": ("名片的实验", "一张名片的全部实验，最新的在前。"),
    "GET /api/enterprises/{eid}/cards/{id}/experiments/{x}": (
        "实验结果",
        (
            "实验及其分析：每个版本的发送数、达成数、比率及 95% Wilson 区间；"
            "按权重调整划分的各分配期的计数；序贯检验的结论（按分配期分层）；一段说明这些调整的中文。"
            "实验要求时，自动提升明显的胜出版本（记入操作日志，只一次）。"
        ),
    ),
    "POST /api/enterprises/{eid}/cards/{id}/experiments/{x}/promote": (
        "提升一个版本",
        (
            "把全部来电交给这个版本，其余版本停用，实验结束（记入操作日志，只一次；实验已结束时 409："
            "同时提升两次只有一次生效）。"
        ),
    ),
    "POST /api/enterprises/{eid}/cards/{id}/experiments/{x}/stop": (
        "停止实验",
        "停止进行中的实验（已结束时 409：同时停止两次只有一次生效）。",
    ),
    "PUT /api/enterprises/{eid}/cards/{id}/experiments/{x}/weights": (
        "调整实验权重",
        "修改进行中实验的权重，记入实验历史和操作日志，开始一个新的分配期。实验已结束时 409。",
    ),
    "GET /api/enterprises/{eid}/cards/{id}/preview": (
        "名片预览",
        "用企业的品牌和素材生成名片的某一版（?format=rcs|png|jpeg|webp|mp4；?version=n，默认最新版）。",
    ),
    "GET /api/enterprises/{eid}/cards/{id}/readiness": (
        "名片能否发送",
        (
            "名片某一版（?version=n，默认最新版）在企业的各个渠道上能否发出：就绪、等待（运营方或运营商）、"
            "被拒绝（谁、为什么）、已失效或未配置。"
        ),
    ),
    "GET /api/enterprises/{eid}/cards/{id}/versions": (
        "名片的版本记录",
        "名片的全部版本，最早的在前，每版附审核情况。",
    ),
    "GET /api/enterprises/{eid}/cards/{id}/versions/{n}/cardsms": (
        "某版名片的卡片短信模板",
        "这一版名片的卡片短信模板，以及它在各手机厂商的审核情况。",
    ),
    "POST /api/enterprises/{eid}/cards/{id}/versions/{n}/cardsms": (
        "登记卡片短信模板",
        "立即把审核通过的这一版名片登记为卡片短信模板。",
    ),
    "POST /api/enterprises/{eid}/cards/{id}/versions/{n}/decision": (
        "审核名片版本（运营方）",
        "通过或拒绝一个待审核的名片版本；拒绝必须写明原因。仅运营方。",
    ),
    "POST /api/enterprises/{eid}/dry-run": (
        "试拨",
        "一条线路和一个号码之间的一通电话会发出什么，逐个渠道列出（不会真的发送）。",
    ),
    "POST /api/enterprises/{eid}/estimate": ("费用估算", "发送之前按渠道估算费用。"),
    "POST /api/enterprises/{eid}/keys": (
        "签发 API 密钥",
        "为企业签发一把 API 密钥，只在这次回答中出现（?label= 备注）。",
    ),
    "GET /api/enterprises/{eid}/keys": (
        "已签发的密钥",
        "企业的密钥：短编号、备注、签发日期（不含密钥本身）。",
    ),
    "DELETE /api/enterprises/{eid}/keys/{kid}": ("吊销密钥", "吊销一把密钥，用它登录的控制台会话随之结束。"),
    "GET /api/enterprises/{eid}/lines": (
        "线路列表",
        "分页列出线路（?q= 搜索，?limit=&offset= 分页），附总数。",
    ),
    "POST /api/enterprises/{eid}/lines": ("添加线路", "登记一个号码；号码统一为国际格式，等待运营方认证。"),
    "GET /api/enterprises/{eid}/lines/{id}": ("查看线路", "一条线路的资料和认证状态。"),
    "PUT /api/enterprises/{eid}/lines/{id}": ("修改线路", "整体替换线路资料；号码本身不能改。"),
    "DELETE /api/enterprises/{eid}/lines/{id}": ("删除线路", "删除一条线路。"),
    "POST /api/enterprises/{eid}/lines/{id}/verify": (
        "认证号码（运营方）",
        "标记号码已认证或未通过，附备注。仅运营方，记入操作日志。",
    ),
    "GET /api/enterprises/{eid}/links/{code}": (
        "一个短链接及其打开情况",
        "企业短信里的一个短链接和它被打开的记录（别的企业的短链接回答 404）。",
    ),
    "POST /api/enterprises/{eid}/media": ("上传素材", "向素材库上传一张图片或一段短视频。"),
    "GET /api/enterprises/{eid}/media": ("素材库", "列出素材库，附已用空间和上限。"),
    "POST /api/enterprises/{eid}/media/fetch": (
        "从网址取图",
        "从企业允许的图片网站（photo_hosts）取一张照片放进素材库。",
    ),
    "GET /api/enterprises/{eid}/media/{id}": (
        "查看素材",
        "一个素材文件的记录；其中 `ref` 是名片数据里填写的引用。",
    ),
    "DELETE /api/enterprises/{eid}/media/{id}": ("删除素材", "从素材库删除一个文件。"),
    "GET /api/enterprises/{eid}/media/{id}/content": ("素材文件内容", "素材文件本身的字节。"),
    "GET /api/enterprises/{eid}/optouts": (
        "退订号码",
        "已退订的号码（?from=&to= 时间范围，?q= 搜索，?format=csv 导出）。",
    ),
    "GET /api/enterprises/{eid}/packages": (
        "套餐列表",
        "分页列出套餐（?q= 搜索，?limit=&offset= 分页），附总数。",
    ),
    "POST /api/enterprises/{eid}/packages": (
        "开通套餐（运营方）",
        "为企业开通一个套餐。套餐只由运营方写入。",
    ),
    "GET /api/enterprises/{eid}/packages/{id}": ("查看套餐", "一个套餐的条数、价格、有效期和用完后的策略。"),
    "PUT /api/enterprises/{eid}/packages/{id}": (
        "修改套餐（运营方）",
        "整体替换一个套餐，例如充值或分配线路。仅运营方。",
    ),
    "DELETE /api/enterprises/{eid}/packages/{id}": ("删除套餐（运营方）", "删除一个套餐。仅运营方。"),
    "GET /api/enterprises/{eid}/report": (
        "投递报表",
        "按渠道、结果、日期统计的投递，套餐余量和预计用完的日期，点击和广告展示（?from=&to= 日期）。",
    ),
    "GET /api/enterprises/{eid}/reports/funnel": (
        "投递漏斗",
        (
            "按渠道和日期的投递漏斗：发送、送达、展示、打开链接，附转化率和合计（?from=&to= 日期，最多 366 "
            "天；默认最近 30 天；?format=csv 导出）。带 ?card= 时是这张名片的漏斗：发送 → 送达 → 展示 → "
            "打开 → 点击，按 ?by=variant|version|channel|card 分组、?bucket=day|hour 分时，每步转化率附 "
            "95% Wilson 区间，以及打开和点击所用时间（中位数、p90 秒）；按小时最多 31 天。"
        ),
    ),
    "GET /api/enterprises/{eid}/staff": (
        "员工列表",
        "分页列出员工（?q= 搜索，?limit=&offset= 分页），附总数。",
    ),
    "POST /api/enterprises/{eid}/staff": ("添加员工", "登记一位员工：编号、姓名和名片数据。"),
    "POST /api/enterprises/{eid}/staff-csv": (
        "导入员工 CSV",
        (
            "从 CSV（id,name,字段路径…）导入员工；要么全部导入，要么一行都不导入，"
            "列出有问题的行（?template= 按模板检查字段）。最多 50000 行、200 个字段列（每个文件和每个企业）"
            "、路径最多 8 层、每格最多 4000 字、文件最大 16777216 字节。"
        ),
    ),
    "GET /api/enterprises/{eid}/staff-csv": (
        "导出员工 CSV",
        "把员工导出为 CSV（边读边发；员工的字段路径多于导入允许的数量时 409）。",
    ),
    "GET /api/enterprises/{eid}/staff/{id}": ("查看员工", "一位员工的资料。"),
    "PUT /api/enterprises/{eid}/staff/{id}": ("修改员工", "整体替换一位员工的资料。"),
    "DELETE /api/enterprises/{eid}/staff/{id}": ("删除员工", "删除一位员工。"),
    "GET /api/enterprises/{eid}/usage": (
        "用量明细",
        "按日期、线路、渠道、套餐统计用量和费用（?by=、?format=csv、?from=&to=）。",
    ),
    "GET /api/gateway/kannel/dlr": (
        "Kannel 回执回调",
        "短信网关 Kannel 的送达回执（dlr-url），用 token= 鉴权。",
    ),
    "GET /api/gateway/kannel/mo": ("Kannel 上行短信回调", "短信网关 Kannel 转来的用户短信；识别退订字样。"),
    "GET /api/jobs/{id}": (
        "媒体渲染任务",
        (
            "一个图片或视频渲染任务：状态、进度（0–1），完成后附文件。设置 `media_store=redis` 时，"
            "每个服务进程都能回答每个任务。"
        ),
    ),
    "DELETE /api/jobs/{id}": ("取消渲染任务", "取消排队中或正在进行的渲染（视频在下一帧停止）。"),
    "GET /api/lines": (
        "全部企业的线路（运营方）",
        "分页列出所有企业的线路；?unverified=1 为号码审核队列。仅运营方。",
    ),
    "GET /api/openapi.json": ("本接口文档", "本服务的 OpenAPI 3.1 文档，API 浏览器读的就是它。"),
    "GET /api/profiles": (
        "运营商配置",
        "渲染时可以对照检查的运营商限制（标题、正文、按钮字数，按钮个数，轮播张数，图片和视频大小）。",
    ),
    "POST /api/replies": ("其他渠道收到的回复", "在其他渠道收到的用户回复；识别退订字样。"),
    "GET /api/reviews": (
        "名片审核队列（运营方）",
        "所有企业待审核的名片版本，每项附正在发送的版本和改动了什么。仅运营方。",
    ),
    "POST /api/session": ("登录控制台", '用密钥登录：{"key"} → 会话 Cookie（HttpOnly，SameSite=Strict）。'),
    "GET /api/session": ("当前登录会话", "这个 Cookie 对应的控制台会话，附 CSRF 令牌。"),
    "DELETE /api/session": ("退出登录", "结束控制台会话（需要 X-CSRF-Token 请求头）。"),
    "POST /api/studio/chat": (
        "工作台里试聊天机器人",
        (
            "预览对话：模拟的 5G 消息平台把一次点击或回复送到工作台自己的聊天机器人（独立的存储、"
            "发件箱和模拟平台），再把机器人发回的回复带回来。从不使用配置的真实平台。"
        ),
    ),
    "GET /api/templates": ("模板列表", "全部模板；有错误的模板连同错误一起列出。"),
    "GET /api/templates/{name}": ("查看模板", "一个模板的清单、数据定义和示例数据。"),
    "GET /api/templates/{name}/events": (
        "模板变更通知",
        (
            "服务器推送事件（SSE）：先发一次 `ready`，模板的任何文件改动时发 `changed`（删除时发 `gone`）。"
            "每个事件的数据是 JSON：`{template, ok, templateVersion}`，模板编译不过时为 `{template, ok: "
            "false, error}`。每 200 毫秒检查一次文件夹；每 15 秒发一行注释，免得代理断开连接。"
        ),
    ),
    "GET /api/templates/{name}/h5": (
        "名片的 H5 页面（工作台预览）",
        "用查询参数里的数据生成名片的 H5 页面（工作台的 H5 手机用）；页面上的按钮不跳转。",
    ),
    "POST /api/templates/{name}/render": (
        "用数据生成名片",
        (
            "请求体是数据对象（按模板的数据定义检查）。`format=rcs`（默认）返回 GSMA messageList；请求头 "
            "`Accept: application/vnd.gsma.botmessage.v1.0+json` 且没有快捷回复时返回单个 botmessage。"
            "图片和视频格式（png、jpeg、webp、mp4）返回文件本身，`X-Media-Url` 指向它在 /media/ "
            "下不变的副本，`X-Cache: hit|miss`（见 docs/media.md）。`format=ussd|flash|sms` "
            "返回给老手机的文本：文字、分段及编码、回复菜单（见 docs/legacy.md）。`format=h5` "
            "返回短链接打开的 H5 页面（text/html），按钮不跳转（见 docs/h5.md）。"
        ),
    ),
    "GET /console": ("控制台", "企业和运营方在浏览器里使用的控制台页面。"),
    "GET /console/static/{name}": ("控制台的脚本和样式", "控制台页面自己的脚本和样式表。"),
    "GET /delivery/static/{name}": ("报表页面的脚本和样式", "报表页面自己的脚本和样式表。"),
    "GET /docs": (
        "文档首页：使用指南",
        "中文使用指南的首页，左侧列出全部文档：使用指南（中文）和参考资料（英文）。",
    ),
    "GET /docs/{name}": (
        "一篇参考资料",
        "`docs_dir` 里的一篇参考资料（如 `templates`、`api`）或 README，显示为网页。",
    ),
    "GET /docs/guide/{name}": ("一篇使用指南", "使用指南（`docs_dir/guide/*.md`）的一篇，显示为网页。"),
    "GET /healthz": ("存活检查", "进程在回答，模板文件夹可以读取。"),
    "POST /maap/{bot}/DeliveryInfoNotification/{chatbotURI}": (
        "中国移动：下行消息送达状态",
        "中国移动平台以 XML 回报机器人所发消息的送达状态。",
    ),
    "POST /maap/{bot}/InboundMessageNotification/{chatbotURI}": (
        "中国移动：用户消息",
        "中国移动平台（OMA NetAPI）以 XML 转来的用户消息；解析时不读 DTD 和实体。",
    ),
    "POST /maap/{bot}/MessageStatusNotification/{chatbotURI}": (
        "中国移动：消息状态",
        "中国移动平台以 XML 回报的消息状态（例如撤回的结果）。",
    ),
    "POST /maap/{bot}/auditnotification": (
        "中国移动：素材审核结果",
        (
            "中国移动平台的素材审核结果：请求头 tid（上传时的编号）和 Authstatus（0 通过，1 驳回）；"
            "请求体的 file-info 给出发送时使用的网址。"
        ),
    ),
    "POST /maap/{bot}/deliveryNotification/{chatbotId}/status": (
        "电信、联通：消息送达和已读状态",
        "中国电信、中国联通平台回报机器人所发消息的送达和已读状态。",
    ),
    "POST /maap/{bot}/events": (
        "GSMA MaaP 事件回调",
        "GSMA MaaP（FNW.11）的事件回调：用户消息、点击回复、消息状态等。",
    ),
    "POST /maap/{bot}/messageNotification/{chatbotId}/messages": (
        "电信、联通：用户消息",
        "中国电信、中国联通平台转来的用户消息：文字、带回传内容的点击、位置、文件。",
    ),
    "POST /maap/{bot}/notifyInfoNotification/{chatbotId}/check": (
        "电信、联通：审核结果",
        (
            "中国电信、中国联通平台对上传素材、机器人信息或消息的审核结果；对不认识的对象的决定照常确认，"
            "但不改变任何东西。"
        ),
    ),
    "GET /maap/{bot}/notifyPath": (
        "电信、联通：回调地址校验",
        "平台校验回调地址：原样返回 echoStr 请求头，并返回 appId 请求头。",
    ),
    "GET /media/library/{name}": (
        "素材库的公开文件",
        (
            "素材库里的一个文件（`<编号>.<扩展名>`），供手机和 5G 消息平台下载。不需要密钥：文件名是 128 "
            "位的内容摘要，只有拿到它的人知道。内容不变（`Cache-Control: public, max-age=31536000, "
            "immutable`）；带 `If-None-Match` 时回答 304。"
        ),
    ),
    "GET /media/{file}": (
        "渲染出的媒体文件",
        (
            "按内容摘要取一个渲染出的图片或视频。内容不变：`Cache-Control: public, max-age=31536000, "
            "immutable`，强 ETag 就是内容摘要，`If-None-Match` 得到 304，单个字节范围得到 206。"
            "本机没有的文件（已清理，或由别的主机生成）按保存的渲染参数重新生成，照样返回（`X-Cache: "
            "regenerated`，否则为 `hit`）。"
        ),
    ),
    "GET /metrics": ("监控指标", "整台主机的 Prometheus 文本格式指标，不论哪个工作进程回答。"),
    "GET /readyz": ("就绪检查", "这个进程需要的数据库、Redis、短信网关连接和模板都能正常回答。"),
    "GET /reports": ("报表页面", "一个企业的报表页面（工作台）。"),
    "GET /s/{code}": (
        "打开短链接",
        (
            "打开短信里的短链接：网页链接跳转到目标地址，名片链接显示名片的 H5 页面（不需要密钥："
            "短链接本身就是凭证）。"
        ),
    ),
    "POST /s/{code}/reply": (
        "H5 页面的回复按钮",
        "名片 H5 页面上的回复按钮（表单）：记一次点击，由企业的聊天机器人在页面上回答，不发到手机。",
    ),
    "GET /s/{code}/tap/{n}": (
        "H5 页面的链接按钮",
        "名片 H5 页面上的链接按钮：记一次点击，然后跳到名片里的网址（从不使用请求里给的网址）。",
    ),
    "POST /s/{code}/tap/{n}": (
        "H5 页面的拨号或短信按钮",
        "名片 H5 页面上拨号或发短信链接的通知：记一次点击。",
    ),
    "GET /static/{path}": (
        "工作台的静态文件",
        "工作台的脚本模块、样式表、图标、`fonts.css` 和项目字体（`fonts/<文件>`）。",
    ),
    "GET /t/{name}": ("名片工作台：模板预览", "一个模板的实时预览：数据表单、七部手机、原始报文。"),
}


# The English a route module wrote for a parameter or an answer → its Chinese; the English is
# kept beside it as `x-description-en`.
PARAMETERS: dict[str, str] = {
    "carrier profile name (see /api/profiles); default: the `default_profile` setting": (
        "运营商配置的名字（见 /api/profiles）；默认为设置项 `default_profile`"
    ),
    "chatbot folder name under chatbots/": "chatbots/ 下聊天机器人文件夹的名字",
    "images, view=overview: carousel cards drawn side by side": "图片，view=overview：并排画出的轮播卡片张数",
    (
        "images: `card` = the card as a phone shows it (a carousel: card `card`, with page dots); "
        "`overview` = a carousel's first `cards` cards side by side; `media` = the media-slot picture"
    ): (
        "图片：`card` 为手机上看到的整张卡片（轮播时为第 `card` 张，带页码圆点）；`overview` 为轮播前 "
        "`cards` 张并排；`media` 为卡片图片位置的图片"
    ),
    "images: which carousel card (view=card) or whose media slot (view=media)": (
        "图片：轮播的第几张（view=card），或哪一张的图片位置（view=media）"
    ),
    "media formats: 1 = answer 202 with a job at once (poll /api/jobs/{id})": (
        "图片和视频格式：1 表示立即回答 202 和一个任务（再查询 /api/jobs/{id}）"
    ),
    "mp4 and rcs&media=video: frame shape; upright 9:16 (720x1280) by default": (
        "mp4 和 rcs&media=video：画面比例；默认竖屏 9:16（720x1280）"
    ),
    "mp4: duration (default 5 s for a card, 3 s per carousel card; capped by the profile)": (
        "mp4：时长（单张卡片默认 5 秒，轮播每张 3 秒；不超过运营商配置的上限）"
    ),
    "our stable outbound message ID": "本服务给下行消息的固定编号",
    "output target: rcs, or any format a feature registers": "输出格式：rcs，或其他功能注册的格式",
    (
        "png/jpeg/webp/mp4 and rcs&media=…: pixel width (images 720; videos 720 for 9:16 and 1:1, 1280 for "
        "16:9; a video's longer side is at most 1920)"
    ): (
        "png/jpeg/webp/mp4 和 rcs&media=…：像素宽度（图片 720；视频 9:16 和 1:1 为 720，16:9 为 1280；"
        "视频长边最多 1920）"
    ),
    (
        "rcs: render each card's media first (`card` = JPEG media-slot picture, `video` = MP4 + thumbnail) "
        "and point mediaUrl/thumbnailUrl at /media/… with the file sizes filled in"
    ): (
        "rcs：先生成每张卡片的媒体（`card` 为图片位置的 JPEG，`video` 为 MP4 和缩略图），"
        "mediaUrl/thumbnailUrl 指向 /media/… 并填上文件大小"
    ),
    "the button's index": "按钮的序号",
    "the card's id": "名片 ID",
    "the chatbot URI, URL-encoded, as China Mobile sends it": "机器人 URI，URL 编码，和中国移动发来的一样",
    "the data as the studio's share links encode it": "数据，按工作台分享链接的方式编码",
    "the enterprise's id": "企业 ID",
    "the experiment's id (`<card>~<n>`)": "实验编号（`<名片>~<序号>`）",
    "the platform's chatbot URI, e.g. sip:106500@botplatform.rcs.chinaunicom.cn": (
        "平台上的机器人 URI，例如 sip:106500@botplatform.rcs.chinaunicom.cn"
    ),
}

RESPONSES: dict[str, str] = {
    "CSV": "CSV 文件",
    "OK": "成功",
    "OpenAPI 3.1 document": "OpenAPI 3.1 文档",
    "PostgreSQL or Redis does not answer; nothing was accepted (Retry-After)": (
        "PostgreSQL 或 Redis 没有响应，什么都没有接收（见 Retry-After）"
    ),
    "URL verified": "回调地址已校验",
    "`csrf_failed`: no valid token, or posted from another site": (
        "`csrf_failed`：没有有效的令牌，或从别的网站提交"
    ),
    "`info_pending`: an update of this bot's information waits for the carrier": (
        "`info_pending`：这个机器人已有一个信息更新在等运营商审核"
    ),
    (
        "`invalid`: problems name each JSON path; `info_unsupported`: the bot's platform takes no "
        "information updates (China Mobile, GSMA, or no MaaP account)"
    ): (
        "`invalid`：问题列出每个 JSON 路径；`info_unsupported`：机器人的平台不接受信息更新（中国移动、"
        "GSMA，或没有平台账号）"
    ),
    "`maap_refused`: the platform did not take the update (its answer in the message)": (
        "`maap_refused`：平台没有接受这次更新（平台的回答在 message 里）"
    ),
    "`s` is not encoded data, or an unknown profile": "`s` 不是编码后的数据，或运营商配置不存在",
    "a byte range of the file": "文件的一段字节",
    "accepted": "已接收",
    "an HTML page": "一个 HTML 页面",
    "an event stream": "事件流",
    "an expired card link: its enterprise's page": "过期的名片链接：显示企业的页面",
    "applied (a repeat changes nothing)": "已处理（重复的请求不改变任何东西）",
    "async=1: the render job": "async=1：渲染任务",
    "bad query": "查询参数不对",
    "bad request": "请求不对",
    "bad_signature or stale_callback": "签名不对（bad_signature）或回调已过期（stale_callback）",
    "body too large": "请求体太大",
    "bots": "机器人列表",
    "cancellation requested": "已请求取消",
    "capabilities": "服务器能力",
    "cleared": "已解除",
    "conversation too contended, or its store (Redis, PostgreSQL) away; retry": (
        "会话争用太多，或它的存储（Redis、PostgreSQL）不可用；请重试"
    ),
    "counted (or not a dial link: nothing to count)": "已计数（不是拨号链接时不计数）",
    "created": "已创建",
    "credentials missing or wrong (checked before the body is read as JSON)": (
        "凭证缺失或不对（在按 JSON 读取请求体之前检查）"
    ),
    (
        "data fails the schema (every error with its JSON path), the card breaks a profile limit, or the "
        "template is broken"
    ): ("数据不符合数据定义（每个错误附 JSON 路径）、卡片超出运营商限制，或模板有错"),
    "decided": "已决定",
    "deleted": "已删除",
    "duplicate: already accepted": "重复：之前已接收",
    "every experiment of the card, newest first": "名片的全部实验，最新的在前",
    "exists / taken": "已存在或已被占用",
    "filed, pending": "已提交，待审核",
    "handled": "已处理",
    "handled (or recognised as a repeat) and committed": "已处理（或识别为重复）并已保存",
    "healthy": "正常",
    "information": "机器人信息",
    "invalid (problems name the JSON path)": "内容不对（问题列出 JSON 路径）",
    "malformed JSON, unknown format or profile, too deep": (
        "JSON 格式不对、格式或运营商配置不存在，或嵌套太深"
    ),
    "malformed body, bad session id, nothing to send": "请求体格式不对、会话编号不对，或没有可发送的内容",
    "message": "消息",
    "metrics": "监控指标",
    "neither a picture nor a video, by its bytes": "按文件内容看既不是图片也不是视频",
    "no button named, or not a reply button": "没有指定按钮，或不是回复按钮",
    "no chatbot runs on this server, or none answers this tap": (
        "这台服务器没有运行聊天机器人，或没有机器人回答这次点击"
    ),
    "no or unknown API key": "没有 API 密钥，或密钥不存在",
    "no such card link or button": "没有这个名片链接或按钮",
    "no such card link or button, or the button is not a link": "没有这个名片链接或按钮，或按钮不是链接",
    "no such doc": "没有这篇文档",
    "no such file": "没有这个文件",
    (
        "no such file (a malformed name, no render spec kept for it, or a spec its template or the "
        "renderer no longer makes)"
    ): ("没有这个文件（名字格式不对、没有保存它的渲染参数，或模板和渲染器已不再生成它）"),
    "no such id or line (or another enterprise's)": "没有这个编号或线路（或属于别的企业）",
    "no such library file": "素材库里没有这个文件",
    "no such message": "没有这条消息",
    "no such platform or template": "没有这个平台或模板",
    "no such template": "没有这个模板",
    "not JSON": "不是 JSON",
    "not JSON, or not a valid event: problems name the JSON path": (
        "不是 JSON，或不是有效的事件：问题列出 JSON 路径"
    ),
    "not a JSON object": "不是 JSON 对象",
    (
        "not a check notification (problems name the field); `invalid_time`: time in neither 'YY-MM-DD "
        "HH:MM:SS' nor ISO 8601"
    ): ("不是审核通知（问题列出字段）；`invalid_time`：时间既不是 'YY-MM-DD HH:MM:SS' 也不是 ISO 8601"),
    "not application/json": "不是 application/json",
    "not modified": "没有变化",
    "not modified (ETag matched)": "没有变化（ETag 相同）",
    "not ready: the message names what (`not_ready`, with `checks`)": (
        "未就绪：message 写明哪一项（`not_ready`，附 `checks`）"
    ),
    "operator only": "仅运营方",
    "profiles": "运营商配置",
    "range not satisfiable (Content-Range gives the size)": (
        "请求的字节范围无效（Content-Range 给出文件大小）"
    ),
    "ready": "就绪",
    "recorded": "已记录",
    "refusals": "驳回记录",
    "rendered": "已生成",
    "replayed": "重复的请求，回答与第一次相同",
    "requests": "申请列表",
    "rows": "行",
    "signed out": "已退出登录",
    "stored": "已保存",
    "submitted: waiting for the carrier": "已提交：等待运营商审核",
    "templates": "模板列表",
    "the bot's replies": "机器人的回复",
    "the caller's address is outside the networks allowed for this dialect": (
        "调用方的地址不在这类平台允许的网段里"
    ),
    "the card page with the chatbot's answer": "名片页面，附聊天机器人的回答",
    "the card's page (a card link)": "名片页面（名片链接）",
    "the chatbot is busy (Retry-After), or the card cannot be shown now": (
        "聊天机器人正忙（见 Retry-After），或现在无法显示名片"
    ),
    "the data does not fit the template, or the card breaks a limit": "数据不符合模板，或卡片超出限制",
    "the data is larger than `max_body_bytes`": "数据超过 `max_body_bytes`",
    "the encoder failed": "编码失败",
    "the experiment": "实验",
    "the experiment and its analysis": "实验及其分析",
    "the experiment, running": "实验，进行中",
    "the file": "文件",
    "the file (image/jpeg, image/png or video/mp4)": "文件（image/jpeg、image/png 或 video/mp4）",
    "the job": "任务",
    "the job already finished": "任务已经结束",
    "the link": "短链接",
    "the link has expired: its enterprise's page": "短链接已过期：显示企业的页面",
    "the page": "页面",
    "the payload, picture or video (202 with a job while a video renders)": (
        "报文、图片或视频（视频生成期间回答 202 和任务）"
    ),
    "the platform did not take the template (cardsms_refused)": "平台没有接受这个模板（cardsms_refused）",
    "the preview loop did not deliver the bot's replies": "预览通道没有送达机器人的回复",
    "the render was cancelled": "渲染已取消",
    "the request": "申请",
    "the session: operator or enterprise, its CSRF token, when it expires": (
        "会话：运营方还是企业、CSRF 令牌、何时过期"
    ),
    "the shared media store (Redis) is unreachable": "共享的媒体存储（Redis）无法连接",
    "the template": "模板",
    "the template is broken (problems carry file and line)": "模板有错（问题附文件和行号）",
    "to the button's own URL": "跳到按钮自己的网址",
    "to the link's recorded target (a web link)": "跳到短链接记录的目标地址（网页链接）",
    "too many attempts (Retry-After)": "尝试次数太多（见 Retry-After）",
    "too many unknown codes from this address (Retry-After)": (
        "这个地址访问不存在的短链接太多次（见 Retry-After）"
    ),
    "too many unknown or expired codes from this address (Retry-After), as on /s/{code}": (
        "这个地址访问不存在或过期的短链接太多次（见 Retry-After），与 /s/{code} 相同"
    ),
    "too many wrong API keys (Retry-After)": "错误的 API 密钥太多次（见 Retry-After）",
    "unknown bot": "没有这个机器人",
    "unknown job id": "没有这个任务",
    "unknown or expired: one Chinese page for both": "不存在或已过期：两种情况是同一个中文页面",
    "withdrawn": "已撤回",
    "wrong token": "令牌不对",
}


def _chinese(obj: dict[str, Any], table: dict[str, str]) -> None:
    """Give a parameter or an answer its Chinese description, the English kept beside it."""
    zh = table.get(obj.get("description", ""))
    if zh:
        obj["x-description-en"] = obj["description"]
        obj["description"] = zh


def tag_of(path: str) -> str:
    """The Chinese tag of a path: by its first segment after `/api/` (or its first segment)."""
    seg = path.strip("/").split("/")
    key = seg[1] if seg[0] == "api" and len(seg) > 1 else seg[0]
    for name, _, firsts in TAGS:
        if key in firsts:
            return name
    return OTHER_TAG


def translate(doc: dict[str, Any]) -> None:
    """Put the Chinese summaries, descriptions, tags, parameters' and answers' descriptions into
    `doc` (built, a copy), keeping the English as `x-summary-en` / `x-description-en`. What the
    tables lack keeps its English."""
    info = doc.get("info", {})
    if info.get("description"):
        info["x-description-en"] = info["description"]
    info["description"] = (
        "由名片模板生成来电名片：5G 消息（GSMA RCS）报文、老手机文本、图片和视频，以及挂机后的聊天机器人。"
    )
    used: set[str] = set()
    for path, ops in doc.get("paths", {}).items():
        for method in METHODS:
            op = ops.get(method)
            if op is None:
                continue
            tag = tag_of(path)
            used.add(tag)
            op["tags"] = [tag]
            for param in op.get("parameters", []):
                _chinese(param, PARAMETERS)
            for answer in op.get("responses", {}).values():
                _chinese(answer, RESPONSES)
            zh = OPERATIONS.get(f"{method.upper()} {path}")
            if zh is None:
                continue
            if "summary" in op:
                op["x-summary-en"] = op["summary"]
            if op.get("description"):
                op["x-description-en"] = op["description"]
            op["summary"], op["description"] = zh
    doc["tags"] = [{"name": name, "description": text} for name, text, _ in TAGS if name in used]
    if OTHER_TAG in used:
        doc["tags"].append({"name": OTHER_TAG, "description": "尚未归类的接口。"})
